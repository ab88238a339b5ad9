"""Beam's Python job service (``local_job_service_main``) whose FnApiRunner asks the EXTERNAL worker pool for
``--direct_num_workers`` SDK harnesses. Beam 2.77's ``BeamJob._invoke_runner`` builds a FnApiRunner that
keeps its default of one worker (the option is read only by ``run_pipeline``, which the job service never
calls); Flink and Dataflow start a harness per TaskManager slot or worker VM. Run:
``python -m tests.support.portable_jobserver --port=PORT``."""

from __future__ import annotations

import sys

from apache_beam.options import pipeline_options
from apache_beam.portability.api import beam_job_api_pb2
from apache_beam.runners.portability import local_job_service, local_job_service_main
from apache_beam.runners.portability.fn_api_runner import fn_runner


def _invoke_runner(self):
    self.set_state(beam_job_api_pb2.JobState.RUNNING)
    opts = self.pipeline_options()
    runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
    runner._num_workers = max(1, int(opts.view_as(pipeline_options.DirectOptions).direct_num_workers or 1))
    return runner.run_via_runner_api(self._pipeline_proto, opts)


local_job_service.BeamJob._invoke_runner = _invoke_runner

if __name__ == "__main__":
    local_job_service_main.run(sys.argv[1:])
