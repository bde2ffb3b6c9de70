# usage: loop.sh N TAG EXTRA...
n=$1; tag=$2; shift 2
for i in $(seq $n); do
  out=/tmp/ka/$tag-$i
  /work/main/target/debug/tickgate-bench --scenarios seed --receivers tickgate-paced,socket-recv --rounds 1 --max-rounds 1 --duration 0.5 --rate 2000 --clients 16 --flows 4 --fast-tick-hz 0 --sockperf-seconds 0 --quiet-wait 0 --retries 0 --quiet --no-png "$@" --out $out > $out.log 2>&1
  python3 - $out <<'PY' >> /tmp/ka/$tag.txt
import json,sys
r=json.load(open(sys.argv[1]+'/raw/runs.json'))
for x in r:
    l=x['loss']; k=x.get('kernel') or {}
    print(sys.argv[1].split('/')[-1], x['receiver'], 'lost', l['legit_inputs_lost'], 'unexplained', l['unexplained_packets'], l['by_reason'], 'napi %.2f' % x['cpu']['napi_pct'], 'noports', (k.get('rx_mib') or {}).get('Udp.NoPorts',0), 'halts', [c.get('halts') for c in x['cpu']['cores']])
PY
  rm -rf $out
done
echo done >> /tmp/ka/$tag.txt
