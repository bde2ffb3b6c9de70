import json,sys,glob,collections
for d in sorted(glob.glob(sys.argv[1])):
    runs=json.load(open(d+'/raw/runs.json'))
    for r in runs:
        c=r['cpu']; tc=r['tick_close']
        print(f"{d.split('/')[-1]:8} {r['scenario']:12} {r['receiver']:16} recv {c['receiver_pct']:5.2f} napi {c['napi_pct']:5.2f} worker {c['worker_pct']:5.2f} seq {c['sequencer_pct']:4.2f} late% {r['late_pct']:.4f} tc p50 {tc['p50_us']:7.0f} p99 {tc['p99_us']:7.0f}")
