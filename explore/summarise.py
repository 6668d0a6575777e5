import json, sys, collections, statistics as st
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f)]
groups = collections.defaultdict(list)
for r in rows:
    s = r['spec']
    if s.get('kind') == 'data':
        key = (s['name'], s['lam'], s.get('alpha'), str(s.get('tau')), s['k'])
    elif s.get('hand_layer'):
        key = (f"hand{s['hand_layer']}", '-', '-', '-', s['k'])
    else:
        key = ('plain', '-', '-', '-', s['k'])
    groups[key].append(r)
for key in sorted(groups, key=lambda k: (k[4], k[0], str(k[1]))):
    g = groups[key]
    k = key[4]
    mse = [r['test_mse'] for r in g]
    picks = [r['narrow_active'] for r in g]
    width = [r['active'][r['narrow_active'] - 1] for r in g]
    nodes_pick = [r['narrow_nodes'] for r in g]
    l3 = [r['active'][2] for r in g]
    ok = sum(1 for r in g if r['narrow_active'] == 3 and abs(r['active'][2] - k) <= 1)
    okany = sum(1 for r, w in zip(g, width) if abs(w - k) <= 1)
    print(f"k={k} {key[0]:15s} lam={key[1]!s:6} a={key[2]!s:4} tau={key[3]:12s} n={len(g)} "
          f"mse={st.mean(mse):.4f} layer(active)={picks} width={width} layer(nodes)={nodes_pick} "
          f"active={[r['active'][1:4] for r in g]} goal={ok}/{len(g)} width_ok={okany}/{len(g)}")
