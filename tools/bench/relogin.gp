# tools/bench/relogin.gp -- the relogin curve of tools/bench/c1m.sh --kill-node
# (tools/plot.gp's style).  Variables (gnuplot -e): f = relogin.tsv (t_s,
# survivors, s1, clients, phase: sampled 4 times a second from the nodes'
# stats files), out = the PNG, users = all users, down = seconds s1 was down.
set datafile separator "\t"
set datafile columnheaders
set terminal pngcairo size 1100,520 font "DejaVu Sans,11" noenhanced
set grid
set key below horizontal
set output out
set title sprintf("Node s1 killed (SIGKILL) at 0 s, restarted on its journal at %d s: logged-in users", down)
set xlabel "seconds since the kill"
set ylabel "logged-in users"
set yrange [0:users * 1.05]
set arrow from down, graph 0 to down, graph 1 nohead dt 2 lc rgb "#999999"
plot f using (column("t_s")):(column("survivors")) with lines lw 2 lc rgb "#1f77b4" title "on the other nodes", \
     f using (column("t_s")):(column("s1")) with lines lw 2 lc rgb "#d62728" title "on s1 (restarted)", \
     f using (column("t_s")):(column("clients")) with lines lw 1 dt 2 lc rgb "#ff7f0e" title "clients: logged in", \
     users with lines lw 1 dt 3 lc rgb "#999999" title "all users"
