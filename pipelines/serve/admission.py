"""What one ingress replica holds at once, and what a request reserves of it."""

from pipelines.serve.http import busy
from srgan.canvas import bicubic_work_bytes, bytes_per_input_pixel

DECODE_BYTES_PER_PIXEL = 20  # the decoded input (RGB + alpha: 4 B) and the decoder's copies (16 B)


def request_bytes(pixels: int, scale: int) -> int:
    """Bytes an ingress replica reserves for an upscale of `pixels` input pixels, beside its body:
    the decoded input and the decoder's working copies, the canvas, and bicubic's work on one
    window (srgan.canvas): 100 B a pixel + 20 MB at x4, so 420 MB for 4 MP."""
    return (DECODE_BYTES_PER_PIXEL + bytes_per_input_pixel(scale)) * pixels + bicubic_work_bytes(scale)


class Admission:
    """What one ingress replica holds at once: at most `max_requests` upscale requests and
    `budget` bytes of reservations. Past either, a request is refused at once (503): queueing
    here would only hold its body in memory. Used from the event loop only, so no lock."""

    def __init__(self, max_requests: int, budget: int, retry_after_s: int):
        self.max_requests, self.budget, self.retry_after_s = max_requests, budget, retry_after_s
        self.requests, self.reserved = 0, 0

    def enter(self, nbytes: int) -> "Ticket":
        if self.requests >= self.max_requests:
            raise busy("busy", f"the server holds {self.requests} requests, its limit; retry later",
                       self.retry_after_s)
        ticket = Ticket(self)
        ticket.grow(nbytes)
        self.requests += 1
        return ticket


class Ticket:
    """One request's share of its replica's `Admission`; `release` gives it back (once)."""

    def __init__(self, admission: Admission):
        self.admission, self.nbytes, self.open = admission, 0, True

    def grow(self, nbytes: int) -> None:
        a = self.admission
        if a.reserved + nbytes > a.budget:
            raise busy("busy", f"the server's memory for requests in progress is taken ({a.reserved >> 20} of "
                               f"{a.budget >> 20} MiB; this request needs {nbytes >> 20} MiB more); retry later",
                       a.retry_after_s)
        a.reserved += nbytes
        self.nbytes += nbytes

    def release(self) -> None:
        if self.open:
            self.open = False
            self.admission.requests -= 1
            self.admission.reserved -= self.nbytes

