"""The data mounts editor of the spawn form: rendering (parsed as HTML), parsing rows back,
field errors next to their input, secrets never rendered."""

from __future__ import annotations

import dataclasses

from bs4 import BeautifulSoup

from gridspawner.form import parse_form, render_form
from gridspawner.form.render import EMPTY_MOUNT_ROWS
from gridspawner.mounts.config import parse_storage
from gridspawner.request import OptionsError, build_request

from test_form import HOSTILE, make_catalog, policy

STORAGE = {
    "max_mounts": 4,
    "key_dir": "/srv/keys",
    "s3": {"campus": {"display_name": "Campus S3", "url": "https://s3.example.edu", "buckets": ["lab-*"],
                      "user_prefix": "{username}/", "credentials": ["keys", "sts"],
                      "sts": {"role_arn": "arn:aws:iam::123456789012:role/j"}}},
    "ssh": {"nas": {"display_name": "Group NAS", "address": "nas.example.edu", "known_hosts": "/kh",
                    "paths": ["/export/{username}", "/export/{username}/*"], "auth": ["key", "password"]}},
    "access": {"*": {"s3": ["campus"]}, "physics": {"ssh": ["nas"], "max_mounts": 2}},
}
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample gridspawner:alice"


def catalog(storage=STORAGE):
    return dataclasses.replace(make_catalog(default_policy=policy()), storage=parse_storage(storage))


def render(cat=None, groups=("physics",), values=None, errors=None, key=PUBLIC_KEY) -> BeautifulSoup:
    html = render_form(catalog=cat or catalog(), groups=list(groups), capacity={}, values=values, errors=errors or {},
                       username="alice", ssh_public_key=key)
    return BeautifulSoup(html, "html.parser")


def rows(soup):
    box = soup.find(attrs={"data-gs-rows": True})
    return box.find_all("fieldset", attrs={"data-gs-mount": True}, recursive=False) if box else []


def browser_submit(soup, typed: dict[str, str]) -> dict[str, list[str]]:
    """What a browser without JavaScript submits, after the user typed ``typed``
    (name → value; a checkbox is checked by typing "1")."""
    data: dict[str, list[str]] = {}
    for el in soup.find_all(["select", "input"]):
        if el.find_parent("template") is not None or not el.get("name"):
            continue
        name = el["name"]
        if el.name == "select":
            chosen = [o for o in el.find_all("option") if o.has_attr("selected")] or el.find_all("option")[:1]
            value = typed.get(name, chosen[0]["value"] if chosen else "")
        elif el.get("type") == "checkbox":
            if name not in typed and not el.has_attr("checked"):
                continue
            value = el.get("value", "on")
        elif el.get("type") == "radio":
            if not el.has_attr("checked"):
                continue
            value = el.get("value", "")
        else:
            value = typed.get(name, el.get("value", ""))
        data.setdefault(name, []).append(value)
    data["_xsrf"] = ["token"]
    return data


SECRET = "SECRETVALUE/abc+def="


def test_no_section_without_storage_or_without_access():
    assert render(make_catalog()).find(id="gs-mounts") is None
    assert render(catalog({**STORAGE, "access": {"physics": {"ssh": ["nas"]}}}), groups=("chem",)).find(id="gs-mounts") is None


def test_empty_rows_and_choices_from_the_users_groups():
    soup = render()
    assert len(rows(soup)) == min(EMPTY_MOUNT_ROWS, 2)  # physics may have 2 mounts
    assert soup.find(id="gs-mounts")["data-gs-limit"] == "2"
    first = rows(soup)[0]
    assert [o["value"] for o in first.find("select", attrs={"name": "mounts-0-type"}).find_all("option")] == ["s3", "ssh"]
    assert [o["value"] for o in first.find("select", attrs={"name": "mounts-0-endpoint"}).find_all("option")] == ["campus"]
    assert [o["value"] for o in first.find("select", attrs={"name": "mounts-0-host"}).find_all("option")] == ["nas"]
    assert soup.find(id="gs-ssh-public-key")["value"] == PUBLIC_KEY
    # a user outside physics: S3 only, no type choice, no SSH inputs, no key
    soup = render(groups=())
    assert len(rows(soup)) == EMPTY_MOUNT_ROWS
    assert soup.find("select", attrs={"name": "mounts-0-type"}) is None
    assert soup.find("input", attrs={"name": "mounts-0-type"})["value"] == "s3"
    assert soup.find(attrs={"name": "mounts-0-host"}) is None and soup.find(id="gs-ssh-public-key") is None


def test_secret_inputs_are_password_fields_never_filled():
    values = {"mounts": [{"type": "s3", "endpoint": "campus", "bucket": "lab-x", "target": "t", "credentials": "keys",
                          "access_key": SECRET, "secret_key": SECRET},
                         {"type": "ssh", "host": "nas", "path": "/export/alice", "target": "n", "auth": "password",
                          "password": SECRET}]}
    soup = render(values=values)
    assert SECRET not in str(soup)
    for name in ("mounts-0-access_key", "mounts-0-secret_key", "mounts-1-password"):
        el = soup.find("input", attrs={"name": name})
        assert el["type"] == "password" and el["autocomplete"] == "off" and el["value"] == ""
    assert soup.find("input", attrs={"name": "mounts-0-bucket"})["value"] == "lab-x"


def test_submitted_rows_shown_again_with_errors_next_to_their_inputs():
    values = {"mounts": [{"type": "s3", "endpoint": "campus", "bucket": "lab-nope", "prefix": "alice/", "target": "t",
                          "mode": "copy", "read_only": True, "credentials": "sts"}]}
    errors = {"mounts[0].bucket": "bucket not found", "mounts[0].zzz": "unknown key", "mounts": "at most 2 mounts",
              "foo": "unknown option"}
    soup = render(values=values, errors=errors)
    bucket = soup.find("input", attrs={"name": "mounts-0-bucket"})
    assert "is-invalid" in bucket["class"] and bucket["aria-describedby"] == "gs-mounts-0-bucket-error"
    assert soup.find(id="gs-mounts-0-bucket-error").get_text() == "bucket not found"
    row = rows(soup)[0]
    assert "zzz: unknown key" in row.get_text()
    assert row.find("select", attrs={"name": "mounts-0-mode"}).find("option", selected=True)["value"] == "copy"
    assert row.find("input", attrs={"name": "mounts-0-read_only"}).has_attr("checked")
    assert "at most 2 mounts" in soup.find(id="gs-mounts").get_text()
    top = soup.find(class_="gs-top-errors")
    assert top is not None and "mounts" not in top.get_text() and "foo" in top.get_text()


def test_hostile_values_are_escaped():
    for bad in HOSTILE:
        values = {"mounts": [{"type": "s3", "bucket": bad, "target": bad, "endpoint": bad}]}
        soup = render(values=values, errors={"mounts[0].bucket": bad})
        assert soup.find("script", string=lambda s: s and "alert(1)" in s) is None
        assert soup.find("img") is None
        assert soup.find("input", attrs={"name": "mounts-0-bucket"})["value"] == bad


def test_parse_form_rows():
    form = {
        "mounts-0-type": ["s3"], "mounts-0-endpoint": ["campus"], "mounts-0-host": ["nas"], "mounts-0-bucket": ["lab-x"],
        "mounts-0-prefix": [" alice/ "], "mounts-0-target": ["t"], "mounts-0-mode": ["mount"],
        "mounts-0-credentials": ["keys"], "mounts-0-access_key": ["AK"], "mounts-0-secret_key": [" s p "],
        "mounts-0-auth": ["key"], "mounts-0-password": [""],
        "mounts-1-type": ["s3"], "mounts-1-mode": ["mount"], "mounts-1-endpoint": ["campus"],  # nothing typed
        "mounts-7-type": ["ssh"], "mounts-7-host": ["nas"], "mounts-7-endpoint": ["campus"], "mounts-7-path": ["/export/alice"],
        "mounts-7-target": ["n"], "mounts-7-read_only": ["1"], "mounts-7-auth": ["password"], "mounts-7-password": ["pw"],
        "mounts-7-bucket": [""],
    }
    assert parse_form(form)["mounts"] == [
        {"type": "s3", "endpoint": "campus", "bucket": "lab-x", "prefix": "alice/", "target": "t", "mode": "mount",
         "credentials": "keys", "access_key": "AK", "secret_key": " s p ", "read_only": False},
        {"type": "ssh", "host": "nas", "path": "/export/alice", "target": "n", "auth": "password", "password": "pw",
         "read_only": True},
    ]
    assert "mounts" not in parse_form({"mounts-0-type": ["s3"], "mounts-0-mode": ["copy"]})
    assert parse_form({"mounts-0-target": ["t"], "mounts-0-bogus": ["x"]})["mounts"] == [
        {"target": "t", "bogus": "x", "read_only": False}
    ]


def test_round_trip_without_javascript_to_a_request():
    cat = catalog()
    soup = render(cat, values=None)
    typed = {"backend": "lab", "image": "scipy", "mounts-0-bucket": "lab-data", "mounts-0-prefix": "alice/run1", "mounts-0-target": "run1",
             "mounts-0-read_only": "1", "mounts-0-credentials": "keys", "mounts-0-access_key": "AKID",
             "mounts-0-secret_key": "sk/1+2=",
             "mounts-1-type": "ssh", "mounts-1-path": "/export/alice/p", "mounts-1-target": "p", "mounts-1-mode": "copy"}
    options = parse_form(browser_submit(soup, typed))
    req = build_request(options, cat, ["physics"], username="alice")
    s3, ssh = req.mounts
    assert (s3.type, s3.bucket, s3.prefix, s3.read_only, s3.credentials) == ("s3", "lab-data", "alice/run1/", True, "keys")
    assert (ssh.type, ssh.host, ssh.path, ssh.user, ssh.auth, ssh.mode) == ("ssh", "nas", "/export/alice/p", "alice", "key", "copy")
    assert "sk/1+2=" not in repr(req)


def test_errors_of_a_bad_submission_land_on_the_rendered_inputs():
    cat = catalog()
    soup = render(cat)
    typed = {"mounts-0-bucket": "Bad_Bucket", "mounts-0-target": "x", "mounts-0-credentials": "keys"}
    options = parse_form(browser_submit(soup, typed))
    try:
        build_request(options, cat, ["physics"], username="alice")
    except OptionsError as e:
        errors = e.errors
    else:
        raise AssertionError("expected field errors")
    assert set(errors) >= {"mounts[0].bucket", "mounts[0].access_key", "mounts[0].secret_key"}
    again = render(cat, values=options, errors=errors)
    for key in ("bucket", "access_key", "secret_key"):
        assert again.find(id=f"gs-mounts-0-{key}-error") is not None, key
    assert again.find(class_="gs-top-errors") is None


def test_template_row_for_the_script():
    soup = render()
    tmpl = soup.find("template", id="gs-mount-template")
    assert tmpl.find("input", attrs={"name": "mounts-__i__-bucket"})["value"] == ""
    assert soup.find(attrs={"data-gs-add": True}) is not None


def test_sts_note_names_the_backends_that_stop_servers_before_the_credentials_expire():
    note = render().find(id="gs-mounts-sts-note")
    assert note is not None
    assert note.get_text() == ("Temporary credentials last 12 h. On GPU cluster, a server with a bucket mounted with "
                               "them is stopped shortly before they expire; elsewhere the hub renews them while the "
                               "server runs.")
    # nobody may use the Kubernetes backend: nothing to say
    only_hosts = dataclasses.replace(catalog(), default_policy=policy(backends=frozenset({"lab", "hub"})))
    assert render(only_hosts).find(id="gs-mounts-sts-note") is None
    # no endpoint offers temporary credentials: nothing to say either
    keys_only = {**STORAGE, "s3": {"campus": {**STORAGE["s3"]["campus"], "credentials": ["keys"]}}}
    assert render(catalog(keys_only)).find(id="gs-mounts-sts-note") is None
