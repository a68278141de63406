"""Evaluation measures shared by pretraining's monitoring and the evaluation stages."""
