"""Built-in tasks: demo.count (demos and tests)."""

import time

from marshmallow import Schema, fields, validate

from tasks.hub_task import hub_task
from tasks.job import Job


class CountArgs(Schema):
    steps = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100_000),
                           metadata={"description": "how many steps to count"})
    delay = fields.Float(load_default=0.2, validate=validate.Range(min=0, max=60),
                         metadata={"description": "seconds to sleep per step"})
    fail_at = fields.Integer(load_default=None, allow_none=True,
                             validate=validate.Range(min=1),
                             metadata={"description": "raise an error at this step"})


@hub_task(name="demo.count", args=CountArgs,
          description="Count to `steps`, sleeping `delay` seconds a step (fails at `fail_at`).")
def count(job: Job, steps: int, delay: float, fail_at: int | None = None) -> dict[str, int]:
    for step in range(1, steps + 1):
        if delay:
            time.sleep(delay)
        if fail_at == step:
            raise RuntimeError(f"failed at step {step}, as asked")
        job.progress(step, steps, f"step {step} of {steps}")
    return {"counted": steps}
