"""Per-step learning-rate schedules and the lr a resumed run may lower."""

import math

import pytest
import torch

from stages.training.schedule import (
    build_schedule,
    lr_factor,
    paper_drop_epochs,
    set_base_learning_rates,
)


def test_paper_drops_land_on_epochs_60_and_100_of_150():
    assert paper_drop_epochs(150) == [60, 100]
    assert paper_drop_epochs(15) == [6, 10]
    assert paper_drop_epochs(1) == [1]


def test_drops_apply_from_the_first_step_of_their_epoch():
    factor = lr_factor(150, 10, drop_epochs=[60, 100])
    assert factor(599) == 1.0 and factor(600) == pytest.approx(0.1)
    assert factor(999) == pytest.approx(0.1) and factor(1000) == pytest.approx(0.01)


def test_warmup_then_cosine():
    factor = lr_factor(10, 4, kind="cosine", warmup_epochs=1)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == 1.0
    assert factor(40) == pytest.approx(0.0, abs=1e-12)
    assert factor(22) == pytest.approx(0.5 * (1 + math.cos(math.pi * 18 / 36)))


def test_a_resumed_schedule_takes_the_new_base_lr():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = build_schedule(optimizer, lr_factor(4, 2, drop_epochs=[1]))
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict(), optimizer.state_dict()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = build_schedule(optimizer, lr_factor(4, 2, drop_epochs=[1]))
    scheduler.load_state_dict(state[0])
    optimizer.load_state_dict(state[1])
    set_base_learning_rates(scheduler, [0.01])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
