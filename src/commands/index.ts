/**
 * The command registry: every command is one file under `src/commands/`, registered here once.
 */
import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import { connectCommand } from './connect.js';
import { connectionsCommand } from './connections.js';
import { demoCommand } from './demo.js';
import { execCommand } from './exec.js';
import { reviewCommand } from './review.js';
import { requestCommand } from './request.js';
import { gatewayCommand } from './gateway.js';
import { loginCommand } from './login.js';
import { logoutCommand } from './logout.js';
import { mcpCommand } from './mcp.js';
import { policyCommand } from './policy.js';
import { runCommand } from './run.js';
import { sessionsCommand } from './sessions.js';
import { whoamiCommand } from './whoami.js';

/** Factories of the top-level commands, in help order. */
export const commands: ReadonlyArray<(io: CliIo) => Command> = [demoCommand, loginCommand, whoamiCommand, logoutCommand, connectionsCommand, connectCommand, runCommand, execCommand, mcpCommand, sessionsCommand, reviewCommand, requestCommand, policyCommand, gatewayCommand];
