# tools/plot.gp -- charts of an hb-monitor TSV log (called by tools/plot.sh).
# Variables (gnuplot -e): log = the TSV file, outdir = where the PNGs go,
# run = a title suffix.  Columns are read by name from the log's header, so
# adding columns to the monitor never breaks this script.
if (!exists("log")) log = "monitor.tsv"
if (!exists("outdir")) outdir = "."
if (!exists("run")) run = log

set datafile separator "\t"
set datafile columnheaders
set terminal pngcairo size 1100,520 font "DejaVu Sans,11" noenhanced
set grid
set key below horizontal
set xlabel "time since the first merged second (s)"
set yrange [0:*]
set autoscale xfix

# x: seconds since the first line; t0 from the data
stats log using (column("second")) nooutput
t0 = STATS_min
x = '(column("second") - t0)'
# a second with no replies has no latency: leave a gap, not a zero
lat(name) = column("lat_count") > 0 ? column(name) / 1000.0 : NaN

set output outdir."/client_qps.png"
set title "Client QPS: shakes sent and replies received by all clients (".run.")"
set ylabel "shakes per second"
plot log using @x:(column("client_send_qps")) with lines lw 2 lc rgb "#2ca02c" title "client send", \
     log using @x:(column("client_reply_qps")) with lines lw 2 lc rgb "#1f77b4" title "client replies received", \
     log using @x:(column("target_qps")) with lines lw 1 dt 2 lc rgb "#999999" title "target rate"

set output outdir."/server_qps.png"
set title "Server QPS: shakes received and replies sent by the server (".run.")"
set ylabel "shakes per second"
plot log using @x:(column("server_recv_qps")) with lines lw 2 lc rgb "#ff7f0e" title "server received", \
     log using @x:(column("server_reply_qps")) with lines lw 2 lc rgb "#d62728" title "server replied"

set output outdir."/qps.png"
set title "Client send rate vs server reply rate (".run.")"
set ylabel "shakes per second"
plot log using @x:(column("client_send_qps")) with lines lw 2 lc rgb "#2ca02c" title "client send", \
     log using @x:(column("server_reply_qps")) with lines lw 2 lc rgb "#d62728" title "server reply"

set output outdir."/created.png"
set title "Packets created per second, both flows (".run.")"
set ylabel "packets per second"
plot log using @x:(column("created_ps")) with lines lw 2 lc rgb "#9467bd" title "created"

set output outdir."/won.png"
set title "Packets won per second by shakes (".run.")"
set ylabel "packets per second"
plot log using @x:(column("won_ps")) with lines lw 2 lc rgb "#8c564b" title "won"

set output outdir."/conns.png"
set title "Logged-in connections (".run.")"
set ylabel "connections"
plot log using @x:(column("server_conns")) with lines lw 2 lc rgb "#1f77b4" title "server", \
     log using @x:(column("client_conns")) with lines lw 2 dt 2 lc rgb "#ff7f0e" title "clients"

set output outdir."/latency_p99.png"
set title "Shake reply latency seen by the clients, per second (".run.")"
set ylabel "latency (ms)"
plot log using @x:(lat("lat_p99_us")) with lines lw 2 lc rgb "#d62728" title "p99", \
     log using @x:(lat("lat_p50_us")) with lines lw 1 lc rgb "#1f77b4" title "p50"
