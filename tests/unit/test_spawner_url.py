"""The URL get_url() gives JupyterHub has the form of ``Server.url``: a restarted hub compares
them as strings and rewrites (and logs) every server whose URL differs."""

from gridspawner.spawner import hub_server_url


def test_backend_address_gets_the_servers_base_url():
    assert hub_server_url("http://127.0.0.1:43125", "/user/alice/") == "http://127.0.0.1:43125/user/alice/"
    assert hub_server_url("http://127.0.0.1:43125/", "/user/alice/gpu/") == "http://127.0.0.1:43125/user/alice/gpu/"


def test_port_and_ipv6_written_as_jupyterhub_writes_them():
    # JupyterHub stores the port it parsed (80 / 443 when the URL had none) and brackets IPv6
    assert hub_server_url("http://10.1.2.3", "/user/a/") == "http://10.1.2.3:80/user/a/"
    assert hub_server_url("https://pod.ns.svc", "/user/a/") == "https://pod.ns.svc:443/user/a/"
    assert hub_server_url("http://[fd00::5]:8888", "/user/a/") == "http://[fd00::5]:8888/user/a/"
