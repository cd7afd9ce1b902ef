import type { ProviderSpec } from '../config/provider.js';
import type { Strategy, StrategyContext } from '../http/strategy.js';
import { artifactoryStrategyProvider } from './artifactory/strategy.js';
import { gitStrategyProvider } from './git/strategy.js';
import { githubReleasesStrategyProvider } from './github-releases/strategy.js';
import { gomodStrategyProvider } from './gomod/strategy.js';
import { hermitStrategyProvider } from './hermit/strategy.js';
import { hostStrategyProvider } from './host/strategy.js';
import { proxyStrategyProvider } from './proxy/strategy.js';

/** A configurable strategy: its HCL block spec and the factory the server calls at start-up. */
export interface StrategyProvider {
  spec: ProviderSpec;
  create(ctx: StrategyContext<any>): Strategy | Promise<Strategy>;
}

/**
 * Every `strategy <name> {}` block hoard understands, in no particular order. The object API
 * (`/api/v1`) is always mounted by the server and is not listed here.
 */
export const strategyProviders: StrategyProvider[] = [
  gitStrategyProvider,
  gomodStrategyProvider,
  githubReleasesStrategyProvider,
  hermitStrategyProvider,
  hostStrategyProvider,
  artifactoryStrategyProvider,
  proxyStrategyProvider,
];
