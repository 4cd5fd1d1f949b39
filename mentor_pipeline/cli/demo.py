"""`mentor-pipeline demo`: everything on one machine with demo data (see mentor_pipeline.demo)."""

from __future__ import annotations

from mentor_pipeline import arguments
from mentor_pipeline.demo.stack import DemoOptions, run_demo


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="start embedded PostgreSQL, the Dynamics emulator and Dagster with demo data")
    parser.add_argument("--dagster-port", type=arguments.port, default=3000)
    parser.add_argument("--emulator-port", type=arguments.port, default=8765)
    parser.add_argument("--portal-delay", type=arguments.seconds, default=10.0,
                        help="seconds the public page lags Dataverse (Power Pages: up to 15 minutes)")
    parser.set_defaults(func=lambda args: run_demo(DemoOptions(
        dagster_port=args.dagster_port, emulator_port=args.emulator_port, portal_delay_seconds=args.portal_delay)))
