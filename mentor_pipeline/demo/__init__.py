"""The demo (`bin/demo`): the whole stack on one machine with demo data. Not used in production;
the end-to-end tests and benchmarks start their processes and instances the same way."""
