# usage: perf script -F cpu,time,event,trace -i sched.data | python3 wake.py [NAPI-comm-prefix]
# From sched_waking / sched_switch events recorded on every CPU (perf record -e sched:sched_switch
# -e sched:sched_waking -a): for each wake-up of veth's NAPI thread, the time until it runs, and
# what its CPU was doing when the wake-up was sent (idle = swapper). Prints the distribution per
# half second and overall.
import re, sys, statistics, collections
prefix = sys.argv[1] if len(sys.argv) > 1 else 'napi/'
pending = None
running = {}            # cpu -> comm running there
lat = []                # (latency s, woken at, what its cpu ran then)
for line in sys.stdin:
    m = re.match(r'\s*\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)', line)
    if not m:
        continue
    cpu, t, ev, tr = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
    if ev == 'sched:sched_waking' and f'comm={prefix}' in tr and pending is None:
        target = int(re.search(r'target_cpu=(\d+)', tr).group(1))
        pending = (t, running.get(target, '?'))
    elif ev == 'sched:sched_switch':
        nxt = re.search(r'next_comm=(\S+)', tr).group(1)
        running[cpu] = nxt
        if nxt.startswith(prefix) and pending is not None:
            lat.append((t - pending[0], pending[0], pending[1]))
            pending = None
if not lat:
    sys.exit('no wake-ups of ' + prefix)
def line(label, xs):
    xs = sorted(x * 1e6 for x in xs)
    if not xs:
        print(f'{label:>18} n      0')
        return
    q = lambda p: xs[min(len(xs) - 1, int(len(xs) * p))]
    print(f'{label:>18} n {len(xs):6}  p50 {q(0.5):7.0f} µs  p90 {q(0.9):7.0f}  p99 {q(0.99):7.0f}  max {xs[-1]:7.0f}  >640 µs {sum(x > 640 for x in xs)}')
by = collections.defaultdict(list)
t0 = lat[0][1]
for l, t, _ in lat:
    by[int((t - t0) * 2) / 2].append(l)
for k in sorted(by):
    line(f'+{k:.1f} s', by[k])
line('all', [l for l, _, _ in lat])
line('CPU idle', [l for l, _, r in lat if r.startswith('swapper')])
line('CPU busy', [l for l, _, r in lat if not r.startswith('swapper')])
