/**
 * The live view of `hoop login --device`: the URL and the code to enter, a spinner, the time
 * left before the code expires and the polling interval (which grows after a `slow_down`).
 *
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3 (user interaction)
 * @see https://github.com/vadimdemedes/ink
 */
import { realClock } from '../clock.js';
import { PassThrough, type Writable } from 'node:stream';
import { Box, Text, render, type Instance } from './ink-vendor.js';
import type { DeviceLoginView, DevicePrompt } from '../auth/device-login.js';
import { useNow } from './useNow.js';
import { useSpinner } from './useSpinner.js';

/** Where the device login stands. @see https://www.rfc-editor.org/rfc/rfc8628#section-3.5 */
export type DeviceLoginStatus = 'waiting' | 'approved' | 'failed';

/** Props of {@link DeviceLogin}. @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3 */
export interface DeviceLoginProps {
  prompt: DevicePrompt;
  status: DeviceLoginStatus;
  /** The final word (shown when not waiting). */
  message?: string;
  /** The clock (tests pin it). */
  clock?: () => number;
}

/**
 * `m:ss` for a number of milliseconds (never negative).
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.2 (expires_in)
 */
export function formatTimeLeft(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

/**
 * The device login view.
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3
 */
export function DeviceLogin({ prompt, status, message, clock = realClock.now }: DeviceLoginProps) {
  const waiting = status === 'waiting';
  const now = useNow(1000, waiting, clock);
  const frame = useSpinner(waiting);
  return (
    <Box flexDirection="column">
      <Text>
        Open <Text bold>{prompt.verificationUri}</Text> and enter the code
      </Text>
      <Box marginLeft={2} marginY={1}>
        <Text bold color="cyan">
          {prompt.userCode}
        </Text>
      </Box>
      {prompt.verificationUriComplete ? <Text dimColor>(or open {prompt.verificationUriComplete})</Text> : null}
      {waiting ? (
        <Text>
          <Text color="yellow">{frame}</Text> Waiting for approval · {formatTimeLeft(prompt.expiresAt.getTime() - now)} left · checking every {prompt.intervalSeconds} s
        </Text>
      ) : status === 'approved' ? (
        <Text color="green">✔ {message ?? 'Approved.'}</Text>
      ) : (
        <Text color="red">✘ {message ?? 'Failed.'}</Text>
      )}
    </Box>
  );
}

/**
 * A {@link DeviceLoginView} that draws {@link DeviceLogin} with ink on `stream` (a terminal).
 * Ink never reads the real stdin: it gets an empty stream.
 * @see https://github.com/vadimdemedes/ink#rendertree-options
 */
export function inkDeviceView(stream: Writable): DeviceLoginView {
  let instance: Instance | undefined;
  let props: DeviceLoginProps | undefined;
  const draw = (next: DeviceLoginProps): void => {
    props = next;
    if (instance) instance.rerender(<DeviceLogin {...next} />);
    else {
      instance = render(<DeviceLogin {...next} />, {
        stdout: stream as NodeJS.WriteStream,
        stderr: stream as NodeJS.WriteStream,
        stdin: new PassThrough() as unknown as NodeJS.ReadStream,
        exitOnCtrlC: false,
        patchConsole: false,
      });
    }
  };
  return {
    show(prompt) {
      draw({ prompt, status: 'waiting' });
    },
    slowedDown(intervalSeconds) {
      if (props) draw({ ...props, prompt: { ...props.prompt, intervalSeconds } });
    },
    async finish(result) {
      if (!props || !instance) return;
      draw({ ...props, status: result.ok ? 'approved' : 'failed', message: result.message });
      const done = instance.waitUntilExit();
      instance.unmount();
      await done;
    },
  };
}
