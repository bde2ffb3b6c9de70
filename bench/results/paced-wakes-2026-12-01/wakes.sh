# usage: wakes.sh BIN OUT RATE [extra args]  -- paced worker's syscalls/s during seed-live-inputs
bin=$1; out=$2; rate=$3; shift 3
rm -rf $out; mkdir -p $out
$bin --scenarios seed --generators live-inputs --receivers tickgate-paced --rate $rate --duration 8 --rounds 1 --max-rounds 1 --fast-tick-hz 0 --sockperf-seconds 0 "$@" --out $out/r > $out/log 2>&1 &
bpid=$!
for i in $(seq 1 120); do grep -q "^seed " $out/log 2>/dev/null && break; sleep 0.5; done
sleep 4
tid=$(grep -l tickgate-q0 /proc/$bpid/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
perf stat -x, -e 'syscalls:sys_enter_ppoll,syscalls:sys_enter_read,syscalls:sys_enter_timerfd_settime,syscalls:sys_enter_sendto' -t $tid -- sleep 2 2> $out/perf.csv
wait $bpid
python3 - $out <<'PY'
import json,sys,csv
out=sys.argv[1]
c={row[2].split(':')[-1]:int(row[0])/2 for row in csv.reader(open(out+'/perf.csv')) if len(row)>2 and row[0].isdigit()}
r=json.load(open(out+'/r/report.json'))['scenarios']['seed-live-inputs']['tickgate-paced']['runs'][0]
print(out, {k:int(v) for k,v in c.items()}, 'worker %.2f%%'%r['cpu']['worker_pct'], 'napi %.1f%%'%r['cpu']['napi_pct'], 'deliv %.0f'%r['delivered_pps'], 'loss %.3f%%'%r['loss']['legit_loss_pct'], 'per-core %.0fk'%(r['delivered_pps']/r['cpu']['worker_pct']*100/1000))
PY
