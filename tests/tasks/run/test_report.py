from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.run.report import (
    champion_reason,
    coverage_by_decade,
    data_notes,
    due_diligence,
    forecast_markdown,
    headline_champion,
    leaderboard_table,
    pair_verdict,
    path_models,
    render_history,
    render_report,
    validation_markdown,
)

pytestmark = pytest.mark.unit


def board(*rows: tuple[str, float, float], pvalue: float = 0.2) -> list[dict[str, object]]:
    ordered = sorted(rows, key=lambda r: r[1])
    return [
        {
            "rank": i,
            "model": m,
            "rmse": rmse,
            "mae": rmse * 0.7,
            "mase": 1.0,
            "theil_u2": u2,
            "seeds": 0 if m == "naive" else 5,
            "rmse_std": float("nan") if m == "naive" else 1.5,
            "rmse_min": float("nan") if m == "naive" else rmse - 1,
            "rmse_max": float("nan") if m == "naive" else rmse + 2,
            "dm_pvalue": float("nan") if m == "naive" else pvalue,
        }
        for i, (m, rmse, u2) in enumerate(ordered, 1)
    ]


def verdict(model: str, best: object, pvalue: float, h: int = 1, naive_p: float = 0.2) -> dict:
    return {
        "horizon": h,
        "model": model,
        "rmse": 70.9,
        "dm_pvalue": naive_p,
        "best_model": best,
        "kept": "drift,mean" if best == "mean" else model,
        "dm_pvalue_vs_best": pvalue,
    }


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (
            verdict("drift", "mean", 0.31),
            "At h = 1, drift (rolling RMSE 70.9) is the cheapest of the models not significantly"
            " worse than the best, mean (one-sided Diebold-Mariano, p = 0.31); kept: drift,"
            " mean; it beats naive, but not significantly at 5 % (Diebold-Mariano p = 0.20).",
        ),
        (
            verdict("gru", "gru", float("nan"), naive_p=0.012),
            "At h = 1, gru has the lowest rolling RMSE (70.9) and no cheaper model comes within"
            " reach of it (one-sided Diebold-Mariano, 10 %); it beats naive significantly at"
            " 5 % (Diebold-Mariano p = 0.012).",
        ),
        (
            verdict("gru", None, float("nan"), naive_p=float("nan")),
            "gru had the lowest rolling RMSE at h = 1 (70.9); it has no Diebold-Mariano test"
            " against naive.",
        ),
    ],
    ids=["cheapest-kept", "best-alone", "before-the-rule"],
)
def test_champion_reason_says_why_in_one_sentence(row, words: str) -> None:
    assert words in champion_reason(row)


def test_naive_as_champion_is_not_tested_against_itself() -> None:
    text = champion_reason(verdict("naive", "naive", float("nan"), naive_p=float("nan")))
    assert text == (
        "At h = 1, naive has the lowest rolling RMSE (70.9) and no cheaper model comes within"
        " reach of it (one-sided Diebold-Mariano, 10 %)."
    )


def test_the_headline_champion_is_the_first_horizons() -> None:
    champions = pd.DataFrame([verdict("mean", "mean", np.nan, 2), verdict("drift", "mean", 0.3)])
    assert headline_champion(champions) == "drift"
    assert headline_champion(champions.iloc[:0]) is None


def test_leaderboard_table_columns() -> None:
    table = leaderboard_table(board(("naive", 127.0, 1.0), ("lstm", 120.0, 0.94)))
    assert list(table[0]) == [
        "model",
        "rmse",
        "seeds",
        "rmse_std",
        "rmse_min",
        "rmse_max",
        "dm_pvalue",
        "mae",
        "mase",
        "theil_u2",
        "rank",
    ]
    assert [r["model"] for r in table] == ["lstm", "naive"]
    assert (table[0]["seeds"], table[0]["rmse_std"], table[0]["rmse_max"]) == (5, 1.5, 122.0)
    assert table[1]["rmse_std"] is None and table[1]["dm_pvalue"] is None


def frames(horizon: int = 1):
    months = pd.date_range("2000-01-01", periods=240, freq="MS")
    close = 100 * np.exp(np.cumsum(np.full(240, 0.01)))
    prices = pd.DataFrame({"month": months, "close": close})
    predictions = pd.concat(
        [
            pd.DataFrame({"model": m, "month": months[-40:], "predicted": close[-40:] * k})
            for m, k in (("naive", 0.99), ("lstm", 1.01))
        ]
    )
    forecasts = pd.DataFrame(
        [
            {
                "model": m,
                "target_month": months[-1] + pd.offsets.MonthBegin(h),
                "horizon": h,
                "point": p + 10 * (h - 1),
                "lower_80": (p + 10 * (h - 1)) * (1 - 0.05 * h),
                "upper_80": (p + 10 * (h - 1)) * (1 + 0.05 * h),
                "lower_95": (p + 10 * (h - 1)) * (1 - 0.1 * h),
                "upper_95": (p + 10 * (h - 1)) * (1 + 0.1 * h),
            }
            for m, p in (("lstm", 1200.0), ("naive", 1100.0))
            for h in range(1, horizon + 1)
        ]
    )
    return prices, predictions, forecasts


def champions_of(*models: str) -> pd.DataFrame:
    return pd.DataFrame(
        [verdict(m, "lstm", 0.4 if m != "lstm" else np.nan, h) for h, m in enumerate(models, 1)]
    )


@pytest.mark.parametrize("horizon", [1, 3])
def test_forecast_markdown_names_champion_and_every_model(tmp_path, horizon) -> None:
    _, _, forecasts = frames(horizon)
    champions = champions_of(*["lstm"] * horizon)
    text = forecast_markdown(forecasts, champions, tmp_path / "r.png")
    assert "Champion at h = 1: `lstm`: 1,200.0 for 2020-01" in text
    # every model's next month, once
    assert text.count("| naive | 1,100.0 | 1,045.0 … 1,155.0 | 990.0 … 1,210.0 |") == 1
    assert (tmp_path / "r.png").as_uri() in text
    if horizon == 1:
        assert "# S&P 500 forecast for 2020-01\n" in text
        assert "months ahead" not in text
    else:  # and the champion's whole path, month by month
        assert "# S&P 500 forecast for 2020-01 … 2020-03\n" in text
        assert "**The path: each horizon's champion, 3 months ahead** (lstm;" in text
        assert "| 3 | 2020-03 | lstm | 1,220.0 | 1,037.0 … 1,403.0 | 854.0 … 1,586.0 |" in text
        assert "| naive | 1,110.0" not in text  # other models' later months stay in the warehouse


def test_the_drawn_path_is_each_horizons_champion(tmp_path):
    _, _, forecasts = frames(3)
    champions = champions_of("lstm", "naive", "naive")
    text = forecast_markdown(forecasts, champions, None)
    assert "| 3 | 2020-03 | naive | 1,120.0 |" in text
    assert "| 1 | 2020-01 | lstm | 1,200.0 |" in text and "| 70.9 | lstm | - |" in text
    assert "| 2 | 2020-02 | naive | 1,110.0 |" in text and "| 70.9 | lstm | 0.40 |" in text
    assert "(lstm (h = 1), naive (h = 2-3);" in text
    before = forecast_markdown(forecasts, champions.iloc[:0], None)
    assert "No verdict per horizon" in before and "The path" not in before
    prices, predictions, _ = frames(3)
    png = render_report(prices, predictions, forecasts, champions, tmp_path / "r.png")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_path_models_names_runs_of_horizons() -> None:
    path = pd.DataFrame({"model": ["a", "a", "b", "a"], "horizon": [1, 2, 3, 4]})
    assert path_models(path) == "a (h = 1-2), b (h = 3), a (h = 4)"
    assert path_models(path.assign(model="a")) == "a"


def history_frame() -> pd.DataFrame:
    months = pd.date_range("1978-01-01", periods=300, freq="MS")
    rows = []
    for h in (1, 12):
        actual = 100.0 + np.arange(300)
        point = actual * 1.0
        point[::10] = actual[::10] * 1.5  # every tenth month misses both bands
        rows.append(
            pd.DataFrame(
                {
                    "model": "drift",
                    "forecast_month": months - pd.DateOffset(months=h),
                    "horizon": h,
                    "target_month": months,
                    "point": point,
                    "lower_80": point * 0.95,
                    "upper_80": point * 1.05,
                    "lower_95": point * 0.9,
                    "upper_95": point * 1.1,
                    "actual": actual,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_coverage_per_decade_and_the_history_picture(tmp_path) -> None:
    history = history_frame()
    decades = coverage_by_decade(history)
    assert decades["decade"].tolist() == ["1970s", "1980s", "1990s", "2000s"]
    assert decades.loc[1, "n"] == 120
    assert decades.loc[1, "h1 95"] == pytest.approx(0.9)
    assert decades.loc[1, "h12 80"] == pytest.approx(0.9)
    png = render_history(history, tmp_path / "h.png")
    assert png is not None and png.read_bytes().startswith(b"\x89PNG")
    assert render_history(history.iloc[:0], tmp_path / "none.png") is None


def test_validation_markdown_lists_failures() -> None:
    failures = pd.DataFrame(
        {
            "check_name": ["close_positive"],
            "column_name": ["close"],
            "failure_case": ["-1|x"],
            "row_index": pd.array([3], "Int64"),
        }
    )
    text = validation_markdown(failures, "validation failed")
    assert "| close_positive | close | -1\\|x | 3 |" in text


@pytest.mark.parametrize("horizon", [1, 12])
def test_render_report_writes_a_png(tmp_path, horizon) -> None:
    prices, predictions, forecasts = frames(horizon)
    champions = champions_of(*["lstm"] * horizon)
    path = render_report(prices, predictions, forecasts, champions, tmp_path / "out" / "r.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000


@pytest.mark.parametrize(
    ("model", "baseline", "change", "pvalue", "sentence"),
    [
        (
            "conv1d_lstm",
            "lstm",
            -0.009,
            0.41,
            "conv1d_lstm vs lstm: 0.9 % lower RMSE, p = 0.41: the convolution does not earn its"
            " place",
        ),
        (
            "conv1d_lstm",
            "lstm",
            -0.05,
            0.01,
            "conv1d_lstm vs lstm: 5.0 % lower RMSE, p = 0.01: the convolution earns its place",
        ),
        (
            "conv1d_lstm[filters=64]",
            "conv1d_lstm",
            0.02,
            0.01,  # significantly different, but worse: not earned
            "conv1d_lstm[filters=64] vs conv1d_lstm: 2.0 % higher RMSE, p = 0.01: the variant"
            " does not earn its place",
        ),
        (
            "gru",
            "naive",
            -0.04,
            0.2,
            "gru vs naive: 4.0 % lower RMSE, p = 0.20: gru does not beat naive at 5 %",
        ),
        (
            "drift",
            "naive",
            -0.04,
            0.019,
            "drift vs naive: 4.0 % lower RMSE, p = 0.02: drift beats naive",
        ),
        (
            "gru",
            "drift",
            0.01,
            float("nan"),
            "gru vs drift: 1.0 % higher RMSE, no test: gru does not beat drift at 5 %",
        ),
    ],
)
def test_each_pair_gets_one_sentence(model, baseline, change, pvalue, sentence) -> None:
    assert pair_verdict(model, baseline, change, pvalue) == sentence


def test_due_diligence_reads_rmse_and_tests() -> None:
    comparisons = pd.DataFrame(
        [
            {"model": "conv1d_lstm", "baseline": "lstm", "dm_pvalue": 0.41},
            {"model": "gru", "baseline": "naive", "dm_pvalue": 0.2},
        ]
    )
    lines = due_diligence({"conv1d_lstm": 99.0, "lstm": 100.0, "naive": 110.0}, comparisons)
    assert lines == [
        "conv1d_lstm vs lstm: 1.0 % lower RMSE, p = 0.41: the convolution does not earn its place"
    ]  # gru did not run: no sentence


@pytest.mark.parametrize(
    ("passed_over", "revised", "lines"),
    [
        (None, [], ["Data from b.csv."]),
        (
            "a.csv: HTTP 500\nc.csv: failed validation: close_positive",
            [("2026-02-01", 0.002), ("2026-04-01", 0.01), ("2026-03-01", -0.004)],
            [
                "Data from b.csv, after passing over a.csv: HTTP 500; c.csv: failed validation:"
                " close_positive.",
                "3 past months changed since run r1, largest 2026-04 +1.0 %",
            ],
        ),
    ],
)
def test_the_artifact_says_where_the_data_came_from_and_what_was_revised(
    tmp_path, passed_over, revised, lines
) -> None:
    revisions = pd.DataFrame(
        [
            {
                "month": pd.Timestamp(m),
                "previous_close": 1.0,
                "close": 1.0 + c,
                "relative_change": c,
                "since_run_id": "r1",
            }
            for m, c in revised
        ],
        columns=["month", "previous_close", "close", "relative_change", "since_run_id"],
    )
    notes = data_notes("b.csv", passed_over, revisions)
    assert notes == lines
    _, _, forecasts = frames(1)
    text = forecast_markdown(forecasts, champions_of("lstm"), None, notes=notes)
    assert text.index("At h = 1, lstm") < text.index(lines[-1]) < text.index("| model | point")
