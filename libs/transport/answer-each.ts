import { AsyncQueue } from "./async-queue.js";

/**
 * The body of a bidi handler whose requests are each answered once, later and in any order:
 * `handle` gets every request and a `reply` to call exactly once for it. The response stream
 * ends when the requests have ended and every one has been answered; a caller's abort ends it
 * at once (late replies are dropped), and a failing request stream fails it.
 */
export function answerEach<Req, Res>(
  requests: AsyncIterable<Req>,
  signal: AbortSignal,
  handle: (req: Req, reply: (res: Res) => void) => void,
): AsyncIterable<Res> {
  const out = new AsyncQueue<Res>();
  let outstanding = 0;
  let inputDone = false;
  let cancelled = false;
  void (async () => {
    try {
      for await (const req of requests) {
        outstanding++;
        let replied = false;
        handle(req, (res) => {
          if (replied) return;
          replied = true;
          if (!cancelled) out.push(res);
          if (--outstanding === 0 && inputDone) out.close();
        });
      }
      inputDone = true;
      if (outstanding === 0) out.close();
    } catch (e) {
      out.fail(e);
    }
  })();
  signal.addEventListener("abort", () => {
    cancelled = true;
    out.close();
  });
  return out;
}
