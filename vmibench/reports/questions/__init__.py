"""The reviewer questions: one module per question, each a function from frames to a markdown paragraph whose
every finding is computed from the data (conditional wording from intervals and thresholds).
"""
