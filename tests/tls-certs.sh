#!/bin/sh
# Generates the TLS tests' certificates into DIR with the openssl tool:
#   ca.pem / ca.key          a test CA
#   server.pem / server.key  signed by it, for localhost and 127.0.0.1
#   other.pem / other.key    signed by it, for other.test (SNI, wrong host)
#   expired.pem / .key       signed by it, for localhost, expired in 2020
#   client.pem / client.key  signed by it, a client certificate (mTLS)
#   rogue.pem / rogue.key    self-signed, for localhost: an unknown CA
# EC P-256 keys: quick to make. Exits 0 when done, 77 without openssl.
set -eu
dir=$1
command -v openssl >/dev/null 2>&1 || exit 77
mkdir -p "$dir"
cd "$dir"
[ -f done ] && exit 0
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=loom test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem

# name CN SAN [EKU]
leaf() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=%s\n' \
    "$3" "${4:-serverAuth}" >"$1.ext"
}
leaf server localhost "DNS:localhost,IP:127.0.0.1"
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
  -extfile server.ext -out server.pem 2>/dev/null
leaf other other.test "DNS:other.test,DNS:*.other.test"
openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
  -extfile other.ext -out other.pem 2>/dev/null
leaf client "loom test client" "DNS:client.test" clientAuth
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
  -extfile client.ext -out client.pem 2>/dev/null

# Expired: openssl x509 (3.0) takes no start date, `openssl ca` does.
leaf expired localhost "DNS:localhost,IP:127.0.0.1"
mkdir -p ca.db
: >ca.db/index.txt
echo 1000 >ca.db/serial
cat >ca.cnf <<CNF
[ ca ]
default_ca = test
[ test ]
dir = ca.db
database = ca.db/index.txt
new_certs_dir = ca.db
serial = ca.db/serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
CNF
openssl ca -batch -config ca.cnf -notext -startdate 20200101000000Z \
  -enddate 20200102000000Z -extfile expired.ext -in expired.csr -out expired.pem \
  2>/dev/null

# An unknown CA: self-signed, for the right names.
key rogue.key
openssl req -x509 -new -key rogue.key -days 3650 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out rogue.pem

touch done
