"""Tests of the evaluate stage: metrics, ROC/confusion shapes, gate, report, bad inputs, component."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from components.common.artifacts import REPO_ROOT if False else None  # noqa: F401  (placeholder)
