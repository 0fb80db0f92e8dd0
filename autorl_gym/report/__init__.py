"""Post-hoc reports of recorded runs: metrics, failure diagnosis, training method, a bootstrap
interval of the gain, plots, and a leaderboard across runs."""

from autorl_gym.report.build import RunReport, WrittenReport, analyse, build_report
from autorl_gym.report.leaderboard import Leaderboard, build_leaderboard, write_leaderboard
from autorl_gym.report.run_data import ReportError, RunData, load_run

__all__ = ["Leaderboard", "ReportError", "RunData", "RunReport", "WrittenReport", "analyse",
           "build_leaderboard", "build_report", "load_run", "write_leaderboard"]
