"""The grading child process: ``python -m autorl_gym.grading.worker JOB.json OUTCOME.json``.

Reads a :class:`~autorl_gym.grading.job.GradeJob`, grades in this process, and writes a
:class:`~autorl_gym.grading.job.GradeOutcome`; progress goes to the job's progress file.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from autorl_gym.core.durable import atomic_write_text
from autorl_gym.core.records import SubmissionError
from autorl_gym.grading.job import GradeJob, GradeOutcome, Progressed


def main(job_file: str, out_file: str) -> int:
    job = GradeJob.model_validate_json(Path(job_file).read_text())
    outcome = GradeOutcome()
    try:
        from autorl_gym.grading.warm import scorer_for

        scorer = scorer_for(job)  # the warm server's, when it prepared this scenario

        def progress(done: int, total: int) -> None:
            atomic_write_text(job.progress_file, Progressed(done=done, total=total).model_dump_json())

        outcome.result = scorer.evaluate_here(job.info, job.split, job.limit, progress, job.log_dir,
                                              model_hash=job.model_hash)
    except SubmissionError as e:
        outcome.refused = str(e)
    except Exception as e:  # noqa: BLE001 - everything else is the grader's failure, reported
        outcome.failed = f"{e.__class__.__name__}: {str(e)[:1000]}"
        outcome.trace = traceback.format_exc(limit=8)[-4000:]
    atomic_write_text(Path(out_file), outcome.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
