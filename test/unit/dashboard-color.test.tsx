// Colour and NO_COLOR: with colours forced on (as on a colour terminal), the dashboard paints
// its marks with the terminal's named colours; with color=false (what the CLI passes under
// NO_COLOR) no colour escape appears at all, and the marks still say everything.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TskoEvent } from '../../src/events.js';
import { fixture } from '../support/dashboard-fixtures.js';

// Chalk (inside Ink) decides the colour level when it is first imported: force it before that.
process.env.FORCE_COLOR = '1';
const { render } = await import('ink-testing-library');
const { DashboardView } = await import('../../ui/dashboard/components/dashboard.js');
const { reduceAll } = await import('../../ui/dashboard/state.js');

/** SGR colour parameters (30–37, 90–97 foreground; 40–47 background), not bold or dim. */
const COLOUR_SGR = /\x1b\[(?:3[0-7]|9[0-7]|4[0-7])m/;

function frame(events: TskoEvent[], color: boolean): string {
  const state = reduceAll(events);
  const { lastFrame, unmount } = render(<DashboardView state={state} now={events.at(-1)!.time} frame={0} columns={100} rows={30} color={color} />);
  const out = lastFrame() ?? '';
  unmount();
  return out;
}

describe('dashboard colours', () => {
  const session = fixture('hello-session.jsonl');
  const failed = session.slice(0, session.findIndex((e) => e.type === 'iteration.end' && e.result === 'build-failed') + 1);

  it('paints results green and failures red when colour is on', () => {
    const ok = frame(session, true);
    assert.match(ok, /\x1b\[32m✓/, 'a green ✓');
    const bad = frame(failed, true);
    assert.match(bad, /\x1b\[31m✗/, 'a red ✗');
  });

  it('writes no colour escape at all under NO_COLOR, keeping the marks', () => {
    for (const events of [session, failed]) {
      const out = frame(events, false);
      assert.doesNotMatch(out, COLOUR_SGR);
      assert.match(out, /[✓✗]/);
    }
  });
});
