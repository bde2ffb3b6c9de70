"""Per run and scenario: each receiver's receive side (worker + NAPI thread + sequencer, % of a
core), its NAPI thread's part, the medians of tick close, of send -> receive stamp and of send ->
frame, and tickgate-paced's receive side over each socket receiver's in the same run.
Usage: python3 ratios.py DIR   (DIR holds ab.sh's <binary>-<round>/ folders)"""
import glob
import json
import sys

for runs in sorted(glob.glob(sys.argv[1] + '/*/raw/runs.json')):
    name = runs.split('/')[-3]
    by = {}
    for x in json.load(open(runs)):
        by.setdefault(x['scenario'], {})[x['receiver']] = x
    for scenario, rx in sorted(by.items()):
        cells = ['%s %5.2f%% (napi %4.2f; p50 close %4.0f, stamp %4.0f, latency %5.0f us)' % (
            r, x['cpu']['receiver_pct'], x['cpu']['napi_pct'], x['tick_close']['p50_us'],
            x['rx_stamp']['p50_us'], x['latency']['p50_us']) for r, x in rx.items()]
        t = rx.get('tickgate-paced')
        ratios = ['/%s %.2f' % (r, t['cpu']['receiver_pct'] / x['cpu']['receiver_pct'])
                  for r, x in rx.items() if t and r.startswith('socket')]
        print('%-10s %-22s %s | tickgate-paced %s' % (name, scenario, ' | '.join(cells), ' '.join(ratios)))
