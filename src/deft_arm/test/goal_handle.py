"""A stand-in for an action server's goal handle, and a runner of coroutines that never await."""


class Handle:
    """Stands in for the action server's goal handle."""

    def __init__(self, goal):
        self.request = goal
        self.is_cancel_requested = False
        self.status = None
        self.feedback = []

    def abort(self):
        self.status = 'aborted'

    def succeed(self):
        self.status = 'succeeded'

    def canceled(self):
        self.status = 'canceled'

    def publish_feedback(self, fb):
        self.feedback.append(fb)


def run(coroutine):
    """Run a coroutine that never awaits (every outcome in these tests ends before one)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError('run_grasp awaited something')
