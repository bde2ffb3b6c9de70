# Inputs/s per worker core, tickgate-paced / socket-recvmmsg, per round, from pair.sh's runs.
import json, sys, os, glob
for d in sys.argv[1:]:
    r = json.load(open(os.path.join(d, 'report.json')))['scenarios']
    for scen, v in r.items():
        t, s = v['tickgate-paced']['runs'], v['socket-recvmmsg']['runs']
        cells = []
        for a, b in zip(t, s):
            pa = a['delivered_pps'] / a['cpu']['worker_pct'] * 100
            pb = b['delivered_pps'] / b['cpu']['worker_pct'] * 100
            cells.append(f"{pa/1e3:.0f}k/{pb/1e3:.0f}k={pa/pb:.2f} (w {a['cpu']['worker_pct']:.1f}/{b['cpu']['worker_pct']:.1f}%, loss {a['loss']['legit_loss_pct']:.2f}/{b['loss']['legit_loss_pct']:.2f}%)")
        print(f"{os.path.basename(d):6} {scen:18} " + '  '.join(cells))
