/**
 * A request waiting for its route's answer, with the deadline that answer has.
 * limits: the optionLimits hook runs; handler: the route's handler (or a write's
 * accept hook) runs, with a fresh deadline; done: answered, refused or timed out.
 */
import { transitions } from "./machine.ts";
import type { RequestPacket } from "./packet.ts";
import type { NegotiationLimits, Negotiated } from "./options.ts";
import type { RequestInfo } from "./routes.ts";
import type { Timed } from "./timer_heap.ts";

/** A request in its handler: `limits` waits for the optionLimits hook, `handler` for the route's answer. */
export const Stage = { LIMITS: "limits", HANDLER: "handler", DONE: "done" } as const;
export type Stage = (typeof Stage)[keyof typeof Stage];
export const stage = transitions<Stage>("request", { limits: ["handler", "done"], handler: ["done"], done: [] });

export class Pending implements Timed {
  stage: Stage = Stage.LIMITS;
  scheduledAt = Infinity;
  deadline: number;
  limits: NegotiationLimits | null = null;
  negotiated: Negotiated | null = null;
  /** When the timed handler began, and how long it took. */
  handlerStart = NaN;
  handlerMs?: number;
  constructor(
    readonly id: number,
    readonly key: string,
    readonly req: RequestPacket,
    readonly info: RequestInfo,
    now: number,
    timeoutMs: number,
  ) {
    this.deadline = now + timeoutMs;
  }
  get wakeAt(): number {
    return this.stage === Stage.DONE ? Infinity : this.deadline;
  }
}
