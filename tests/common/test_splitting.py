"""The split's error names the window as the config wrote it, even after KFP made it doubles."""

import pandas as pd
import pytest

from components.common.errors import DataError
from components.common.splitting import split


def test_an_empty_window_that_went_through_kfp_prints_whole_years():
    df = pd.DataFrame({"year": [2016, 2017], "employed": [0, 1]})
    through_kfp = {
        "method": "time",
        "train_window": [2015.0, 2015.0],
        "test_window": [2016.0, 2016.0],
    }
    with pytest.raises(DataError, match=r"the train split is empty \(window 2015-2015 of year\)$"):
        split(df, through_kfp, "employed", "year", "validate")
