# Container default: listen on every interface, state on the volume, metrics on :9102.
# Mount your own file over /etc/hoard/hoard.hcl (or set HOARD_CONFIG) to change it.
state = "/var/lib/hoard"
bind  = "0.0.0.0:8080"

metrics { bind = "0.0.0.0" }

cache disk {}
metadata memory {}

strategy git {}
strategy gomod {}
strategy github-releases { private-orgs = [] }
strategy hermit {}
