"""A local S3 (moto) for Tansu's ``s3://`` storage: the only engine in this build whose
topics and records survive a broker restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from event_spine.broker.tansu import free_port, wait_for_port

BUCKET = "tansu"
#: Tansu's ``--storage-engine`` for the bucket ``moto_s3`` creates.
STORAGE_URL = f"s3://{BUCKET}/"


@contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """Run moto's S3 server with the bucket Tansu expects; yield the env Tansu needs."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_port(port, 30), "moto server did not start"
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        yield {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT": endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
    finally:
        proc.terminate()
        proc.wait(10)
