#!/usr/bin/env bash
# Runs nginx as an independent static file server for the benchmarks: its
# own config, pid file and logs in a directory of ours, on a free loopback
# port, with sendfile on. Nothing outside DIR is written (no /etc/nginx, no
# /var/log/nginx), so it can run beside a system nginx.
#
#   port=$(bash bench/nginx.sh start DIR ROOT)   # serve ROOT; prints the port
#   bash bench/nginx.sh stop DIR                 # stop it (idempotent)
#   bash bench/nginx.sh install                  # apt-get install nginx-light if missing
#
# Or source it and call nginx_start DIR ROOT / nginx_stop DIR / nginx_install.
# start installs nginx-light with apt-get when nginx is missing (as root,
# waiting for another apt to finish); it fails, saying why, if it cannot.

nginx_install() {
	command -v nginx >/dev/null 2>&1 && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "nginx.sh: nginx is not installed and there is no apt-get to install it" >&2
		return 1
	fi
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	# Another apt may hold the lock: wait for it (up to 5 minutes) rather than fail.
	local i
	for i in 1 2 3; do
		if $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q nginx-light >&2 ||
			{ $sudo apt-get -o DPkg::Lock::Timeout=300 update -q >&2 &&
				$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -q nginx-light >&2; }; then
			command -v nginx >/dev/null 2>&1 && return 0
		fi
		sleep 5
	done
	echo "nginx.sh: could not install nginx-light" >&2
	return 1
}

# nginx_free_port prints a loopback TCP port nobody listens on now.
nginx_free_port() {
	local port
	for _ in $(seq 50); do
		port=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "nginx.sh: no free port found" >&2
	return 1
}

# nginx_start DIR ROOT: writes DIR/nginx.conf, starts nginx serving ROOT on
# 127.0.0.1, waits until it answers, prints the port.
nginx_start() {
	local dir=$1 root=$2
	if [ -z "$dir" ] || [ -z "$root" ]; then
		echo "usage: nginx.sh start DIR ROOT" >&2
		return 2
	fi
	nginx_install || return 1
	mkdir -p "$dir/tmp" || return 1
	dir=$(cd "$dir" && pwd) root=$(cd "$root" && pwd) || return 1
	# A master started as root runs its worker as "nobody", which cannot
	# read a private temp dir: keep the worker as the user who started it.
	local user=
	[ "$(id -u)" -ne 0 ] || user="user $(id -un) $(id -gn);"
	local port try
	for try in 1 2 3; do
		port=$(nginx_free_port) || return 1
		cat >"$dir/nginx.conf" <<EOF
# Written by bench/nginx.sh; everything nginx writes stays in $dir.
daemon on;
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
	access_log $dir/access.log;
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	types { application/octet-stream bin; }
	default_type application/octet-stream;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 30;
	server {
		listen 127.0.0.1:$port;
		root $root;
	}
}
EOF
		if nginx -q -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/error.log"; then
			local i
			for i in $(seq 100); do
				if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
					echo "$port"
					return 0
				fi
				sleep 0.05
			done
		fi
		nginx_stop "$dir"
	done
	echo "nginx.sh: nginx did not start; see $dir/error.log:" >&2
	tail -n 5 "$dir/error.log" >&2
	return 1
}

# nginx_stop DIR: stops the nginx started with DIR and waits for it to exit.
nginx_stop() {
	local dir=$1 pid
	[ -n "$dir" ] && [ -f "$dir/nginx.pid" ] || return 0
	pid=$(cat "$dir/nginx.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	kill -QUIT "$pid" 2>/dev/null || { rm -f "$dir/nginx.pid"; return 0; }
	local i
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
	rm -f "$dir/nginx.pid"
	return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	case "${1:-}" in
	start) shift; nginx_start "$@" ;;
	stop) shift; nginx_stop "$@" ;;
	install) nginx_install ;;
	*)
		echo "usage: nginx.sh start DIR ROOT | stop DIR | install" >&2
		exit 2
		;;
	esac
fi
