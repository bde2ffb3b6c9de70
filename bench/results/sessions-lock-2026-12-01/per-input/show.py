import json,sys,glob,os
for d in sorted(glob.glob(sys.argv[1]+'/*/report.json')):
    r=json.load(open(d))['scenarios']['seed']
    row=[]
    for rx,v in r.items():
        run=v['runs'][0]; w=run['cpu']['worker_pct']; pps=run['delivered_pps']
        row.append(f"{rx}: {w/100*1e9/pps:.0f} ns/in ({w:.1f}% @ {pps/1000:.0f}k, loss {v['loss_pct']:.2f}%)")
    print(os.path.basename(os.path.dirname(d)), ' | '.join(row))
