# Shared by the bench scripts (sourced, not run).

export PATH="$PATH:/usr/sbin:/sbin"

# install_missing COMMAND=PACKAGE… → the packages of the commands not found, installed from
# Debian's packages non-interactively.
install_missing() {
  local wanted=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || wanted+=("${pair#*=}")
  done
  [ ${#wanted[@]} -eq 0 ] && return 0
  local sudo=
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  echo "installing ${wanted[*]} (Debian packages)…"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${wanted[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${wanted[@]}" >/dev/null; }
}

# nginx_config DIR WORKERS UPSTREAM_PORT [PROXY_PORT] → an nginx config on stdout, everything
# kept in DIR (make DIR/logs and DIR/tmp first): the fast upstream on UPSTREAM_PORT
# (`return 200 '{"ok":true}'`, application/json, keepalive) and, with PROXY_PORT, nginx as a
# proxy to it over a keepalive pool (HTTP/1.1, `Connection` cleared, so connections are
# reused: the usual configuration for proxying, not nginx's defaults).
nginx_config() {
  local dir=$1 workers=$2 upstream=$3 proxy=${4:-}
  cat <<CONF
# Written by bench/lib.sh; everything lives in $dir.
daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    # The fast upstream.
    server {
        listen 127.0.0.1:$upstream;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }
CONF
  if [ -n "$proxy" ]; then
    cat <<CONF

    # nginx as the proxy.
    upstream bench_upstream {
        server 127.0.0.1:$upstream;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$proxy;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
  fi
  echo "}"
}
