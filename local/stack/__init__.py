"""The local stack as plain processes: moto, the model server, the two emulators and Airflow.

``python -m local.stack up|down|status|demo``; ``docker-compose.yaml`` describes the same
services for users with Docker.
"""
