"""The results dashboard: server-rendered pages over the results folders (runs with their status,
a page per run, the leaderboard). ``runs`` reads the folders, ``pages`` renders them, ``app``
serves them (``autorl-gym serve`` under /dashboard, ``autorl-gym sweep`` while it runs)."""

from autorl_gym.dashboard.app import PREFIX, DashboardServer, create_dashboard_app, mount_dashboard
from autorl_gym.dashboard.pages import dashboard_router
from autorl_gym.dashboard.runs import DashboardData, RunSummary, collect

__all__ = ["PREFIX", "DashboardData", "DashboardServer", "RunSummary", "collect", "create_dashboard_app",
           "dashboard_router", "mount_dashboard"]
