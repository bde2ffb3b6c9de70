# One line per wakes.sh run: the paced worker's syscalls per second (perf stat over 2 s of the
# 300 000/s live-input seed) and its CPU, delivery and loss. Usage: wakes.py DIR...
import csv, json, os, sys
for d in sys.argv[1:]:
    c = {row[2].split(':')[-1].replace('sys_enter_', ''): int(row[0]) / 2
         for row in csv.reader(open(os.path.join(d, 'perf.csv'))) if len(row) > 2 and row[0].isdigit()}
    r = json.load(open(os.path.join(d, 'report.json')))['scenarios']['seed-live-inputs']['tickgate-paced']['runs'][0]
    w = r['cpu']['worker_pct']
    print(f"{os.path.basename(d):9} ppoll/s {c.get('ppoll', 0):6.0f}  timerfd reads/s {c.get('read', 0):5.0f}  "
          f"worker {w:5.2f} %  NAPI {r['cpu']['napi_pct']:4.1f} %  delivered {r['delivered_pps']:7.0f}/s  "
          f"lost {r['loss']['legit_loss_pct']:.2f} %  per worker core {r['delivered_pps'] / w * 100 / 1e3:5.0f} k")
