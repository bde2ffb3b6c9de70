# Inputs/s per worker core (delivered inputs/s over the worker thread's share of a core) in a
# sweep report: for each pair and round, at the highest offered rate both receivers served
# losing <= 0.5 % (not the `max` step), as the bench's report does. Usage: percore.py DIR...
import json, sys, os
PAIRS = [('tickgate-wakeup', 'socket-recvmmsg'), ('tickgate-paced', 'socket-recvmmsg'), ('tickgate-paced', 'socket-paced')]
for d in [a for a in sys.argv[1:] if a != '-v']:
    sweep = json.load(open(os.path.join(d, 'report.json')))['sweep']
    steps = {}
    for rx, v in sweep.items():
        for st in v['steps']:
            # As the bench's report: paced steps only (not `max`), nothing unexplained.
            if st['offered_pps'] is None or st['loss']['unexplained_packets'] != 0:
                continue
            steps[(rx, 0, st['offered_pps'])] = st
    out = []
    for t, s in PAIRS:
        for rnd in sorted({k[1] for k in steps}):
            best = None
            for off in sorted({k[2] for k in steps if k[1] == rnd}):
                a, b = steps.get((t, rnd, off)), steps.get((s, rnd, off))
                if not a or not b:
                    continue
                if a['loss']['legit_loss_pct'] <= 0.5 and b['loss']['legit_loss_pct'] <= 0.5:
                    pa = a['delivered_pps'] / a['cpu']['worker_pct'] * 100
                    pb = b['delivered_pps'] / b['cpu']['worker_pct'] * 100
                    best = (off, pa, pb)
                    if '-v' in sys.argv:
                        out.append(f"  {t}/{s} @{off/1000:.0f}k: {pa/1e3:.0f}k/{pb/1e3:.0f}k={pa/pb:.2f}")
            if best:
                off = 'max' if best[0] == float('inf') else f"{best[0]/1000:.0f}k"
                out.append(f"{t}/{s} @{off}: {best[1]/1e3:.0f}k/{best[2]/1e3:.0f}k={best[1]/best[2]:.2f}")
    print(os.path.basename(d.rstrip('/')))
    for o in out:
        print('   ', o)
