import re,statistics,sys
d={}
for l in open(sys.argv[1]):
    v,rest=l.split(' ',1)
    m=re.match(r'([\d.]+)\s*(µs|ms)',rest.strip())
    d.setdefault(v,[]).append(float(m.group(1))*(1000 if m.group(2)=='ms' else 1))
ks=list(d)
for k in ks: print(k, 'median of medians %.0f µs'%statistics.median(d[k]), 'min %.0f'%min(d[k]), sorted(int(x) for x in d[k]))
r=[i/b for b,i in zip(d[ks[0]],d[ks[1]])]; print('pairwise %s/%s'%(ks[1],ks[0]), sorted(round(x,2) for x in r))
