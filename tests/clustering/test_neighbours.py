import sys

import numpy as np
import pytest
import torch

from stages.clustering import neighbours as nb
from stages.clustering.finch import cluster_sums
from stages.clustering.neighbours import exact_first_neighbours, normalised


def brute_force(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First neighbours by float64 similarities, ties to the smaller index."""
    similarity = unit.astype(np.float64) @ unit.astype(np.float64).T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1), similarity.max(axis=1)


def near_ties(seed: int, n: int, dim: int) -> np.ndarray:
    """Clustered rows, with duplicates and rows a hair apart, so bfloat16 cannot rank them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 20, dim))
    rows = centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, dim))
    rows[1::17] = rows[0::17][: len(rows[1::17])]  # exact duplicates
    rows[2::13] += 1e-4 * rng.normal(size=rows[2::13].shape)
    return normalised(rows.astype(np.float32))


@pytest.mark.parametrize("dim", [3, 64, 512])
def test_rounding_error_bound_holds(dim):
    unit = near_ties(dim, 400, dim)
    exact = unit.astype(np.float64) @ unit.astype(np.float64).T
    low = torch.from_numpy(unit).to(torch.bfloat16)
    computed = (low @ low.T).double().numpy()
    assert np.abs(computed - exact).max() <= nb.similarity_error_bound(dim, "bfloat16")
    assert nb.similarity_error_bound(dim, "float32") < 1e-4


@pytest.mark.parametrize("screening", ["bfloat16", "float32"])
@pytest.mark.parametrize("block", [64, 4096])
def test_exact_search_equals_brute_force(monkeypatch, screening, block):
    monkeypatch.setattr(nb, "BLOCK_ROWS", block)
    monkeypatch.setattr(nb, "RESCORE_CHUNK", 500)
    unit = near_ties(0, 700, 48)
    expected, similarity = brute_force(unit)
    found, score = exact_first_neighbours(unit, screening)
    assert np.array_equal(found, expected)
    assert np.allclose(score, similarity, atol=1e-12)


def test_duplicates_and_zero_rows_are_handled():
    unit = normalised(np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0.9, 0.1]], np.float32))
    found, score = exact_first_neighbours(unit, "bfloat16")
    assert found.tolist() == [1, 0, 4, 0, 0]
    assert score[3] == 0.0


def test_thresholds_round_down_never_up():
    values = np.random.default_rng(0).normal(size=10_000)
    rounded = nb._round_down(values)
    assert rounded.dtype == np.float32
    assert (rounded <= values).all()
    assert (np.abs(values - rounded) <= np.abs(values) * 2.0**-23).all()


def test_bfloat16_screening_only_where_it_repays_importing_torch(monkeypatch):
    monkeypatch.setattr(nb, "fast_bfloat16", lambda: True)
    monkeypatch.delitem(sys.modules, "torch")
    assert nb.default_screening(20_000, 512) == "float32"
    assert nb.default_screening(50_000, 512) == "bfloat16"
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert nb.default_screening(20_000, 512) == "bfloat16"  # loaded already: no cost
    monkeypatch.setattr(nb, "fast_bfloat16", lambda: False)
    assert nb.default_screening(50_000, 512) == "float32"


def test_cluster_sums_add_the_rows_of_each_label():
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    sums = cluster_sums(rows, np.array([2, 0, 2, 1, 0, 2]), 3)
    assert sums.dtype == np.float64
    assert sums.tolist() == [[10, 12], [6, 7], [14, 17]]


def test_cluster_sums_across_chunks_equal_a_loop(monkeypatch):
    import stages.clustering.finch as finch_module

    monkeypatch.setattr(finch_module, "SUM_CHUNK_ROWS", 4)  # several chunks of rows
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(23, 5)).astype(np.float32)
    labels = rng.integers(0, 3, size=23)
    sums = cluster_sums(rows, labels, 3)
    expected = [rows[labels == k].astype(np.float64).sum(axis=0) for k in range(3)]
    np.testing.assert_allclose(sums, expected, rtol=1e-12)


class FakeIndex:
    """An approximate index whose search answers with fixed (similarity, neighbour) rows."""

    def __init__(self, similarity: list[list[float]], neighbours: list[list[int]]) -> None:
        self.similarity = np.array(similarity, dtype=np.float32)
        self.neighbours = np.array(neighbours, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert k >= 2 and len(queries) == len(self.neighbours)
        return self.similarity[:, :k], self.neighbours[:, :k]


def test_approximate_answers_skip_the_point_itself_and_missed_points_link_to_themselves(
        monkeypatch):
    """The first other point is taken, also when a duplicate comes before the point itself
    (point 0 is a neighbour like any other); a search that found no other point (-1) links
    the point to itself at similarity -inf. The index is built for the method asked."""
    fake = FakeIndex([[1.0, 0.5, 0.1], [0.9, 0.9, 0.2], [1.0, -3e38, -3e38], [-3e38, -3e38, 0],
                      [0.8, 0.7, 0.6], [1.0, 0.6, 0.5]],
                     [[0, 2, 1], [3, 1, 0], [2, -1, -1], [-1, -1, 0], [1, 2, 4], [5, 0, 1]])
    methods: list[str] = []
    monkeypatch.setattr(nb, "_approximate_index",
                        lambda matrix, method: methods.append(method) or fake)
    chosen, best = nb._approximate_first_neighbours(np.zeros((6, 3), np.float32), "hnsw")
    assert methods == ["hnsw"]
    assert chosen.dtype == np.int64 and best.dtype == np.float64
    assert chosen.tolist() == [2, 3, 2, 3, 1, 0]
    assert best.tolist() == [pytest.approx(0.5), pytest.approx(0.9), -np.inf, -np.inf,
                             pytest.approx(0.8), pytest.approx(0.6)]


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_approximate_searches_on_a_small_set_equal_brute_force(monkeypatch, method):
    """On 300 points HNSW and IVF (7 lists, all probed) find every exact first neighbour;
    `first_neighbours` takes them once the exact-only limit is lowered, and returns int64
    indices and float32 cosine distances."""
    monkeypatch.setattr(nb, "ALWAYS_EXACT_LIMIT", 10)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(300, 8)).astype(np.float32)
    expected, similarity = brute_force(normalised(features))
    found, distance = nb.first_neighbours(np.asfortranarray(features), method)  # faiss: C order
    assert found.dtype == np.int64 and distance.dtype == np.float32
    assert np.array_equal(found, expected)
    np.testing.assert_allclose(distance, 1 - similarity, atol=1e-5)


def test_auto_is_exact_up_to_its_limit_and_hnsw_above(monkeypatch):
    """`auto` searches exactly up to AUTO_EXACT_LIMIT rows and with HNSW above; below
    ALWAYS_EXACT_LIMIT every method is exact."""
    used: list[str] = []
    monkeypatch.setattr(nb, "_approximate_first_neighbours",
                        lambda matrix, method: used.append(method) or
                        (np.zeros(len(matrix), np.int64), np.zeros(len(matrix))))
    features = np.random.default_rng(4).normal(size=(40, 4)).astype(np.float32)
    monkeypatch.setattr(nb, "ALWAYS_EXACT_LIMIT", 10)
    monkeypatch.setattr(nb, "AUTO_EXACT_LIMIT", 40)
    exact, _ = nb.first_neighbours(features, "auto")
    assert used == [] and np.array_equal(exact, brute_force(normalised(features))[0])
    monkeypatch.setattr(nb, "AUTO_EXACT_LIMIT", 39)
    nb.first_neighbours(features, "auto")
    nb.first_neighbours(features, "ivf")
    assert used == ["hnsw", "ivf"]
    monkeypatch.setattr(nb, "ALWAYS_EXACT_LIMIT", 40)
    nb.first_neighbours(features, "hnsw")
    assert used == ["hnsw", "ivf"]


def test_hnsw_is_the_measured_configuration_built_on_one_thread(monkeypatch):
    """The HNSW that benchmarks/RESULTS.md measured (M 32, efConstruction 40, efSearch 128,
    inner product) is built on one thread (a parallel build differs from run to run), and the
    thread count is restored after."""
    import faiss

    unit = normalised(np.random.default_rng(5).normal(size=(200, 6)).astype(np.float32))
    before = faiss.omp_get_max_threads()
    calls: list[int] = []
    setter = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: calls.append(n) or setter(n))
    index = nb._approximate_index(unit, "hnsw")
    assert calls == [1, before] and faiss.omp_get_max_threads() == before
    assert isinstance(index, faiss.IndexHNSWFlat)
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT and index.ntotal == 200
    assert index.hnsw.nb_neighbors(1) == 32  # M; level 0 holds 2 M
    assert (index.hnsw.efConstruction, index.hnsw.efSearch) == (40, 128)


@pytest.mark.parametrize("count, lists", [(300, 7), (780, 20), (40, 1), (20, 1)])
def test_ivf_lists_hold_at_least_39_training_points(count, lists):
    """IVF keeps 39 training points per list (faiss's minimum), 4 sqrt(N) lists at most,
    at least one; it probes 16 lists (benchmarks/RESULTS.md), or all when there are fewer."""
    import faiss

    unit = normalised(np.random.default_rng(6).normal(size=(count, 4)).astype(np.float32))
    index = nb._approximate_index(unit, "ivf")
    assert isinstance(index, faiss.IndexIVFFlat)
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert (index.nlist, index.nprobe, index.ntotal) == (lists, min(lists, 16), count)


@pytest.mark.parametrize("flags, expected", [
    ("flags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n", True),
    ("flags\t\t: fpu sse2 amx_bf16 amx_tile\n", True),
    ("flags\t\t: fpu sse2 avx512f avx512_vnni\n", False),
    ("flags\t\t: fpu sse2 xavx512_bf16\n", False),
])
def test_fast_bfloat16_reads_the_cpu_flags(monkeypatch, flags, expected):
    """Native bfloat16 products are AVX512-BF16 or AMX-BF16, named as whole flags."""
    class FakePath:
        def __init__(self, name: str) -> None:
            assert name == "/proc/cpuinfo"

        def read_text(self) -> str:
            return flags

    monkeypatch.setattr(nb, "Path", FakePath)
    assert nb.fast_bfloat16.__wrapped__() is expected


def test_fast_bfloat16_is_false_without_cpuinfo(monkeypatch):
    """No /proc/cpuinfo (not Linux): assume no native bfloat16."""
    class Unreadable:
        def __init__(self, name: str) -> None:
            pass

        def read_text(self) -> str:
            raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr(nb, "Path", Unreadable)
    assert nb.fast_bfloat16.__wrapped__() is False


def test_bfloat16_from_exactly_the_break_even_size(monkeypatch):
    """50,000^2 x 400 multiply-adds is exactly the break-even point: bfloat16 from there on."""
    monkeypatch.setattr(nb, "fast_bfloat16", lambda: True)
    monkeypatch.delitem(sys.modules, "torch")
    assert nb.default_screening(50_000, 400) == "bfloat16"
    assert nb.default_screening(50_000, 399) == "float32"


@pytest.mark.parametrize("screening, unit", [("bfloat16", 2.0**-8), ("float32", 2.0**-24)])
@pytest.mark.parametrize("dim", [1, 64, 512, 4096, 1_000_000])
def test_error_bound_is_the_documented_sum(screening, unit, dim):
    """The bound is the docstring's sum for the precision's unit roundoff (input 2u + u^2,
    accumulation gamma_D (1 + u)^2, output u (1 + u)^2 (1 + gamma_D), gamma_D = D 2^-24 /
    (1 - D 2^-24)), never below it and above it only by a hair of safety margin."""
    gamma = dim * 2.0**-24 / (1 - dim * 2.0**-24)
    documented = (2 * unit + unit**2 + gamma * (1 + unit) ** 2
                  + unit * (1 + unit) ** 2 * (1 + gamma))
    bound = nb.similarity_error_bound(dim, screening)
    assert documented <= bound <= documented * (1 + 2e-5) + 2e-7


def test_representable_thresholds_are_kept():
    """A value float32 holds exactly is its own rounding down."""
    values = np.array([0.5, -0.25, 1.0, 3.0, 0.0, -1.5], dtype=np.float64)
    assert nb._round_down(values).tolist() == values.tolist()


def test_normalised_rows_are_unit_whatever_their_length_and_the_input_is_kept():
    """Short rows (norm below 1) are scaled up like long ones; zero rows stay zero; the
    caller's float32 array is not normalised in place; the result is C-ordered float32."""
    features = np.array([[0.003, 0.004], [30.0, 40.0], [0.0, 0.0], [0.5, 0.0]], np.float32)
    before = features.copy()
    unit = normalised(np.asfortranarray(features))
    assert unit.dtype == np.float32 and unit.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.6, 0.8], [0, 0], [1, 0]], rtol=1e-6)
    normalised(features)
    assert np.array_equal(features, before)
