# usage: cpu.py DIR (a tickgate-bench --out directory): CPU split and lateness per run, then means.
import json,sys,collections
d=json.load(open(sys.argv[1]+'/raw/runs.json'))
agg=collections.defaultdict(list)
for r in d:
    c=r['cpu']; g=r['generator']
    print(f"{r['scenario']:18} {r['receiver']:16} r{r['round']} late {g['late_sends']:6} live {g['legit_live_frames']:6} recv {c['receiver_pct']:5.2f} napi {c['napi_pct']:5.2f} worker {c['worker_pct']:5.2f} seq {c['sequencer_pct']:5.2f} cons {c['consumer_pct']:5.2f} gen {c['generator_pct']:5.2f}")
    agg[(r['scenario'],r['receiver'])].append(c)
print()
for (s,rc),cs in sorted(agg.items()):
    m=lambda k: sum(c[k] for c in cs)/len(cs)
    print(f"{s:18} {rc:16} recv {m('receiver_pct'):5.2f} napi {m('napi_pct'):5.2f} worker {m('worker_pct'):5.2f} seq {m('sequencer_pct'):5.2f}  recv range {min(c['receiver_pct'] for c in cs):.2f}-{max(c['receiver_pct'] for c in cs):.2f}")
