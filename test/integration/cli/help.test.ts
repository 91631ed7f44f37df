/** `kelp --help` and `kelp <command> --help` for every command: exit 0, every option listed. */
import { describe, expect, it } from 'vitest';
import { COMMAND_OPTIONS } from '../../../origin/config.ts';
import { runKelp } from './harness.ts';

describe('kelp --help', () => {
  it('lists every command (and kelp tier|admin --help every subcommand)', async () => {
    const r = await runKelp(['--help']);
    expect(r.code).toBe(0);
    const parents = new Map<string, string>();
    for (const command of Object.keys(COMMAND_OPTIONS)) {
      // Subcommands are keyed "parent sub" and listed by their parent's help.
      const [parent, sub] = command.split(' ') as [string, string | undefined];
      if (sub) {
        expect(r.stdout.toString()).toMatch(new RegExp(`^  ${parent} `, 'm'));
        if (!parents.has(parent)) {
          const help = await runKelp([parent, '--help']);
          expect(help.code).toBe(0);
          parents.set(parent, help.stdout.toString());
        }
        expect(parents.get(parent)).toContain(`${sub} [options]`);
      } else expect(r.stdout.toString()).toContain(`${command} [options]`);
    }
  });

  it.each(Object.entries(COMMAND_OPTIONS))(
    'kelp %s --help lists each flag with its env var',
    async (command, spec) => {
      const r = await runKelp([...command.split(' '), '--help']);
      expect(r.code, r.stderr).toBe(0);
      const help = r.stdout.toString().replace(/\s+/g, ' ');
      expect(help).toContain(`Usage: kelp ${command}`);
      expect(help).toContain('--config <file>');
      for (const o of Object.values(spec)) {
        if (!o.flag) continue;
        expect(help).toContain(`--${o.flag} ${o.arg}`);
        expect(help).toContain(o.env);
      }
      expect(help).not.toMatch(/--(signingKey|jwt|key)\b/);
    },
  );

  it('fails with exit 2 and the option name on a bad value', async () => {
    const r = await runKelp(['master', '--port', 'many']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port: must be an integer 0-65535');
  });
});
