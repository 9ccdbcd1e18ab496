// One epoll for every watched socket of a process (adapters/native/epoll.ts), against scripted
// calls: which descriptor hears of which event, one wait outstanding at a time, and no wait left
// pending (which would keep the process alive) once the last socket stops.
import { test } from "uvu";
import * as assert from "uvu/assert";
import process from "node:process";
import { type EpollCalls, EpollLoop } from "../adapters/native/epoll.ts";

const EVENT_SIZE = process.arch === "x64" ? 12 : 16;
const EVENT_DATA = process.arch === "x64" ? 4 : 8;
const EPOLLIN = 1, EPOLLOUT = 4, EPOLLERR = 8;

function scripted() {
  const ctl: [string, number, number][] = [];
  const waits: { events: Uint8Array; resolve: (n: number) => void }[] = [];
  const written: number[] = [];
  const calls: EpollCalls = {
    epollCreate1: () => 50,
    epollCtl(_epfd, op, fd, event) {
      ctl.push([["", "add", "del", "mod"][op], fd, new DataView(event.buffer).getUint32(0, true)]);
      return 0;
    },
    epollWaitOffThread: (_epfd, events) => new Promise((resolve) => waits.push({ events, resolve })),
    eventfd: () => 51,
    write: (fd) => (written.push(fd), 8),
    read: () => 8,
    errno: () => 0,
  };
  /** The pending wait returns these [fd, events]. */
  const ready = async (...list: [number, number][]) => {
    const w = waits.shift()!;
    const v = new DataView(w.events.buffer);
    list.forEach(([fd, ev], i) => {
      v.setUint32(i * EVENT_SIZE, ev, true);
      v.setUint32(i * EVENT_SIZE + EVENT_DATA, fd, true);
    });
    w.resolve(list.length);
    await new Promise((r) => setTimeout(r, 0));
  };
  return { calls, ctl, waits, written, ready };
}

test("each socket hears of its own events; one wait at a time, renewed after each", async () => {
  const s = scripted();
  const loop = new EpollLoop(s.calls);
  assert.equal(s.waits.length, 0, "no wait before a socket is watched");
  const heard: string[] = [];
  loop.watch(7, (r, w) => heard.push(`7:${r}:${w}`));
  const eight = loop.watch(8, (r, w) => heard.push(`8:${r}:${w}`));
  assert.equal(s.ctl, [["add", 51, EPOLLIN], ["add", 7, EPOLLIN], ["add", 8, EPOLLIN]]);
  assert.is(s.waits.length, 1, "one wait for both");
  eight.writable(true);
  assert.equal(s.ctl.at(-1), ["mod", 8, EPOLLIN | EPOLLOUT]);
  await s.ready([8, EPOLLOUT], [7, EPOLLIN], [7, EPOLLERR]);
  assert.equal(heard, ["8:false:true", "7:true:false", "7:true:false"], "an error is read as a receive (it clears it)");
  assert.is(s.waits.length, 1, "the wait is renewed");
  assert.throws(() => loop.watch(7, () => {}), /watched already/);
});

test("a socket stopped is told nothing more; the last stop ends the wait, which is not renewed", async () => {
  const s = scripted();
  const loop = new EpollLoop(s.calls);
  const heard: number[] = [];
  const a = loop.watch(7, () => heard.push(7));
  const b = loop.watch(8, () => heard.push(8));
  a.stop();
  assert.equal(s.ctl.at(-1)!.slice(0, 2), ["del", 7], "removed from the set before its owner closes it");
  assert.equal(s.written, [], "another socket is still watched: the wait goes on");
  await s.ready([7, EPOLLIN], [8, EPOLLIN]);
  assert.equal(heard, [8]);
  b.stop();
  b.stop();
  assert.equal(s.written, [51], "the wake-up is written once");
  await s.ready([51, EPOLLIN]);
  assert.is(s.waits.length, 0, "nothing watched: no wait pending");
  loop.watch(9, () => heard.push(9));
  assert.is(s.waits.length, 1, "a new socket starts one again");
  await s.ready([9, EPOLLIN]);
  assert.equal(heard, [8, 9]);
});

test.run();
