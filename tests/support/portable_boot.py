"""A Python stand-in for Beam's SDK container boot program (``boot.go``), used as the EXTERNAL worker pool's
``--container_executable``: it asks the runner's provision service for the job's pipeline options and starts
``sdk_worker_main`` with them, as the harnesses of Flink (PROCESS/DOCKER environments) and Dataflow start. Beam's
plain Python pool starts ``SdkHarness`` without options, so a worker's ``FileSystems`` would never see the run's
``--s3_*`` flags; through this boot it does. Called by the pool as
``portable_boot --id=W --logging_endpoint=H:P --artifact_endpoint=H:P --provision_endpoint=H:P
--control_endpoint=H:P``; the process execs the harness (same pid, so the pool's child is the worker)."""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
from google.protobuf import json_format


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    for name in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint", "control_endpoint"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args(argv)
    with grpc.insecure_channel(args.provision_endpoint) as ch:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(ch).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)]).info
    env = {**os.environ, "WORKER_ID": args.id,
           "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
           "LOGGING_API_SERVICE_DESCRIPTOR": f'url: "{args.logging_endpoint}"',
           "CONTROL_API_SERVICE_DESCRIPTOR": f'url: "{args.control_endpoint}"',
           "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities)}
    os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"], env)


if __name__ == "__main__":
    main(sys.argv[1:])
