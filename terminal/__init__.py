"""The evaluator application: flow, screens, store, local API and the service."""
