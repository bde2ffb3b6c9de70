cd /work/main
for r in 1 2 3; do for v in probe ids; do
 /tmp/ab/bench-$v --scenarios sweep --receivers tickgate-wakeup,tickgate-paced,socket-recvmmsg,socket-paced --rounds 2 --max-rounds 2 --sockperf-seconds 0 --out /tmp/sw3/$v-$r > /tmp/sw3/$v-$r.log 2>&1
done; done
echo done > /tmp/sw3/DONE
