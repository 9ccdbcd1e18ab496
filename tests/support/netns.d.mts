// Types for netns.mjs (shared with bench/scaleout.mjs, which runs on plain Node).
import type { ChildProcess } from "node:child_process";

export const CLI: string;
export const VIP: string;
export function netnsUnavailable(): string | undefined;
export interface SiteOptions {
  instances: number;
  port?: number;
  masquerade?: boolean;
  helper?: boolean;
  clientAddresses?: number;
}
export function ruleset(o: { backends: string[]; port?: number; masquerade?: boolean; helper?: boolean }): string;
export interface Topology {
  balancer: string;
  clients: string;
  hosts: string[];
  addresses: string[];
  clientAddresses: string[];
  port: number;
  rules: string;
  destroy(): void;
}
export function createTopology(o: SiteOptions): Topology;
export function inNs(ns: string, cmd: string, args: string[]): [string, string[]];
export interface Instance {
  child: ChildProcess;
  lines: string[];
  stop(): void;
  stderr(): string;
}
export function startInstance(host: string, o: { root: string; port?: number; flags?: string[]; timeoutMs?: number }): Promise<Instance>;
export function served(lines: string[], file: string): number;
export function pool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]>;
