import { createWritableIterable } from "@connectrpc/connect/protocol";

/** Opens one bidi call; the link feeds `requests` and reads the responses it returns. */
export type OpenStream<Req, Res> = (requests: AsyncIterable<Req>, signal: AbortSignal) => AsyncIterable<Res>;

/**
 * One bidi stream to a downstream service, written batch by batch. `send` resolves when the
 * transport has taken the message (so a slow peer slows the writer: backpressure), and
 * rejects once the stream has ended. Responses and the stream's end go to the callbacks.
 */
export class StreamLink<Req, Res> {
  private readonly input = createWritableIterable<Req>();
  private readonly abort = new AbortController();
  private endedWith: { error: unknown } | undefined;
  /** Resolves when the stream has ended, with the error that ended it (undefined when clean). */
  readonly done: Promise<unknown>;

  constructor(open: OpenStream<Req, Res>, onResponse: (res: Res) => void) {
    this.done = (async () => {
      try {
        for await (const res of open(this.input, this.abort.signal)) onResponse(res);
        this.endedWith = { error: undefined };
        return undefined;
      } catch (e) {
        this.endedWith = { error: e };
        return e;
      } finally {
        this.input.close();
      }
    })();
  }

  /** True once the stream has ended, cleanly or not. */
  get ended(): boolean {
    return this.endedWith !== undefined;
  }

  /** Writes one message; throws when the stream has ended. */
  async send(req: Req): Promise<void> {
    if (this.endedWith !== undefined) throw new Error("stream ended");
    await this.input.write(req);
  }

  /** Ends the request side; the peer finishes what it has and ends the stream. */
  closeRequests(): void {
    this.input.close();
  }

  /** Cancels the call. */
  cancel(): void {
    this.abort.abort();
    this.input.close();
  }
}
