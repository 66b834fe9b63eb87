"""Which port a staging instance takes, which instances are retired, and the [application] section's rules."""

from __future__ import annotations

import pytest

from releaser import instances
from releaser.config import Application, Environment
from releaser.errors import PlanRefused
from releaser.instances import Instance, ServerInstances, StagingStart, plan_staging_instance, retired_instances
from releaser.participants import front

PORTS = (8101, 8102, 8103)


def view(slots: dict[str, str], *running: tuple[int, str], unhealthy: tuple[str, ...] = ()) -> ServerInstances:
    """A server with these slots and an instance per (port, release); `unhealthy` releases answer 503."""
    by_release = {release: slot for slot, release in slots.items()}
    return ServerInstances(slots, tuple(Instance(port, release, 1000 + port, 503 if release in unhealthy else 200,
                                                 release, by_release.get(release)) for port, release in running))


@pytest.mark.parametrize(("state", "release", "expected"), [
    pytest.param(view({}), "r1", StagingStart("r1", 8101), id="first-instance"),
    pytest.param(view({"live": "r1"}, (8101, "r1")), "r2", StagingStart("r2", 8102), id="beside-live"),
    pytest.param(view({"live": "r2", "backup": "r1"}, (8102, "r2"), (8101, "r1")), "r3", StagingStart("r3", 8103),
                 id="beside-live-and-backup"),
    pytest.param(view({"live": "r2", "backup": "r1"}, (8101, "r1"), (8102, "r2"), (8103, "r0")), "r3",
                 StagingStart("r3", 8103, stop_first=(8103,)), id="retired-instance-gives-its-port"),
    pytest.param(view({"live": "r1", "staging": "r2"}, (8101, "r1"), (8102, "r2")), "r2",
                 StagingStart("r2", 8102, already_running=True), id="same-release-again-starts-nothing"),
    pytest.param(view({"live": "r1", "staging": "r2"}, (8101, "r1"), (8102, "r2"), unhealthy=("r2",)), "r2",
                 StagingStart("r2", 8102, stop_first=(8102,), restart=True), id="unhealthy-staging-restarts-in-place"),
    pytest.param(view({"live": "r1", "staging": "r3"}, (8101, "r1"), (8102, "r2")), "r3", StagingStart("r3", 8103),
                 id="replaced-staging-keeps-its-port-until-pruned"),
])
def test_plan_staging_instance_takes_a_port_no_named_instance_holds(state, release, expected):
    assert plan_staging_instance(PORTS, state, release) == expected


@pytest.mark.parametrize(("state", "release", "message"), [
    pytest.param(view({"live": "r1"}, (8101, "r1")), "r1", "release r1 is the live release", id="live-release"),
    pytest.param(view({"live": "r2", "backup": "r1"}, (8101, "r1"), (8102, "r2"), (8103, "r1")), "r3",
                 r"every instance port \(8101, 8102, 8103\)", id="no-port-left"),
])
def test_plan_staging_instance_refuses(state, release, message):
    with pytest.raises(PlanRefused, match=message):
        plan_staging_instance(PORTS, state, release)


def test_retired_instances_are_those_no_slot_names():
    state = view({"live": "r1", "staging": "r3"}, (8101, "r1"), (8102, "r2"), (8103, "r3"))

    assert [i.release for i in retired_instances(state)] == ["r2"]


def test_instances_are_listed_live_backup_staging_then_retired_whatever_their_ports():
    state = view({"live": "r3", "backup": "r2", "staging": "r4"},
                 (8101, "r4"), (8102, "r1"), (8103, "r3"), (8104, "r2"), (8100, "r0"))

    assert [(i.slot, i.port) for i in state.in_slot_order()] == [
        ("live", 8103), ("backup", 8104), ("staging", 8101), (None, 8100), (None, 8102)]


def test_parse_instances_reads_slots_and_instances_and_marks_the_dead():
    printed = ("slot live releases/r2\nslot backup releases/r1\n"
               "instance 8102 r2 4242 200 r2\ninstance 8101 r1 - 000 -\ninstance 8103 r0 77 503 r0\n")

    parsed = instances.parse_instances(printed)

    assert parsed.slots == {"live": "r2", "backup": "r1"}
    assert parsed.instances == (Instance(8101, "r1", None, None, None, "backup"),
                                Instance(8102, "r2", 4242, 200, "r2", "live"),
                                Instance(8103, "r0", 77, 503, "r0", None))
    assert [i.is_healthy for i in parsed.instances] == [False, True, False]


APP = {"start": "supervise start", "stop": "supervise stop", "ports": [8101, 8102, 8103]}


@pytest.mark.parametrize(("section", "message"), [
    pytest.param({"start": "x", "ports": [1, 2, 3]}, "both start and stop", id="start-without-stop"),
    pytest.param({**APP, "unit": "phof@.service"}, "either unit or start and stop", id="unit-and-commands"),
    pytest.param({"unit": "phof.service", "ports": [1, 2, 3]}, "template unit", id="not-a-template"),
    pytest.param({**APP, "ports": [8101, 8101, 8103]}, "a port of its own", id="repeated-port"),
    pytest.param({**APP, "ports": [8101, 8102]}, "at least 3", id="two-ports"),
    pytest.param({**APP, "health_path": "healthz"}, "starting with '/'", id="relative-health-path"),
    pytest.param({**APP, "address": "127.0.0.1; include /etc/passwd"}, "IPv4 address or a host name", id="address-with-nginx-syntax"),
    pytest.param({**APP, "start_timeout": "30"}, "valid number", id="timeout-as-text"),
    pytest.param({**APP, "restart": "x"}, "Extra inputs", id="unknown-key"),
])
def test_application_section_refuses(section, message):
    with pytest.raises(ValueError, match=message):
        Application.model_validate(section)


def test_an_environment_without_application_has_no_instances_and_no_front():
    environment = Environment.model_validate({"servers": [{"name": "web-1", "root": "/srv", "live_url": "http://a",
                                                           "staging_url": "http://b"}]})

    assert environment.application is None
    assert environment.instance_ports(environment.servers[0]) == []


def test_a_server_may_have_ports_of_its_own():
    environment = Environment.model_validate({"application": APP, "servers": [
        {"name": "web-1", "root": "/srv", "live_url": "http://a", "staging_url": "http://b"},
        {"name": "web-2", "root": "/srv", "live_url": "http://c", "staging_url": "http://d", "app_ports": [9001, 9002, 9003]}]})

    assert [environment.instance_ports(s) for s in environment.servers] == [[8101, 8102, 8103], [9001, 9002, 9003]]


def test_server_scripts_take_every_value_as_a_positional_argument():
    """A release id, a path and a command reach the scripts as arguments, never inside the script text."""
    application = Application.model_validate({**APP, "front": {"include": "/etc/nginx/phof live.upstream",
                                                                "nginx": ["/usr/sbin/nginx", "-c", "/etc/x; rm -rf /"]}})
    root = instances.PurePosixPath("/srv/phof $HOME")

    start = instances.start_argv(application, root, 8102, "r2", "staging")
    prepare = front.prepare_argv(application, root, "r2")

    assert start[:2] == ["sh", "-c"] and start[4:] == ["/srv/phof $HOME", "8102", "r2", "staging", "127.0.0.1", "/healthz",
                                                       "30000", "command", "supervise start", "-",
                                                       "supervise stop", "30", "-"]
    assert prepare[4:] == ["/srv/phof $HOME", "/etc/nginx/phof live.upstream", "r2", "127.0.0.1", "/healthz",
                           "/usr/sbin/nginx", "-c", "/etc/x; rm -rf /"]
    with pytest.raises(Exception):
        instances.start_argv(application, root, 8102, "r2; reboot", "staging")


def test_a_socket_front_takes_its_paths_as_arguments_and_tells_the_instance_its_socket():
    application = Application.model_validate({**APP, "front": {"socket": ".releaser/front/live $(reboot).sock"}})
    root = instances.PurePosixPath("/srv/phof")
    socket = instances.PurePosixPath("/srv/phof/.releaser/front/instance-8102.sock")

    start = instances.start_argv(application, root, 8102, "r2", "staging", socket=socket)

    assert start[-1] == "/srv/phof/.releaser/front/instance-8102.sock"
    for argv in (front.prepare_argv(application, root, "r2"), front.commit_argv(application, root),
                 front.restore_argv(application, root), front.abort_argv(application, root)):
        assert argv[4:6] == ["/srv/phof", ".releaser/front/live $(reboot).sock"]
        assert "nginx" not in argv[4:]  # nginx is neither tested nor reloaded: its configuration does not change


@pytest.mark.parametrize(("front_section", "message"), [
    pytest.param({}, "either socket", id="neither"),
    pytest.param({"socket": "a.sock", "include": "b"}, "not both", id="both"),
    pytest.param({"socket": "run/"}, "path of a file", id="directory"),
    pytest.param({"socket": "live\n.sock"}, "path of a file", id="newline"),
    pytest.param({"socket": "-rf/live.sock"}, "reads as an option", id="option"),
    pytest.param({"socket": "live/live.sock"}, "inside live/, which releaser moves", id="inside-a-slot"),
    pytest.param({"socket": ".releaser/instances/live.sock"}, "inside .releaser/instances/", id="inside-instances"),
    pytest.param({"include": "-x.upstream"}, "reads as an option", id="include-option"),
])
def test_a_front_section_refuses(front_section, message):
    with pytest.raises(ValueError, match=message):
        Application.model_validate({**APP, "front": front_section})


def test_the_instances_sockets_sit_beside_the_front_socket():
    environment = Environment.model_validate({"application": {**APP, "front": {"socket": "/run/phof/live.sock"}},
                                              "servers": [{"name": "web-1", "root": "/srv/a", "live_url": "http://a",
                                                           "staging_url": "http://b"}]})
    server = environment.servers[0]

    assert str(environment.front_socket(server)) == "/run/phof/live.sock"
    assert str(environment.instance_socket(server, 8101)) == "/run/phof/instance-8101.sock"


def test_an_instance_socket_path_too_long_for_a_unix_socket_names_the_field(tmp_path):
    from releaser.config import load_environment
    from releaser.errors import ConfigError

    root = "/srv/" + "x" * 90
    path = tmp_path / "long.toml"
    path.write_text(f'transport = "local"\n[[servers]]\nname = "web-1"\nroot = "{root}"\nlive_url = "http://a"\n'
                    'staging_url = "http://b"\n[application]\nstart = "a"\nstop = "b"\nports = [1, 2, 3]\n'
                    '[application.front]\nsocket = "live.sock"\n')
    with pytest.raises(ConfigError, match=r"application.front.socket: on web-1 the instances' sockets would be "
                                          r"/srv/x+/instance-PORT.sock, over the 107 bytes"):
        load_environment(str(path), tmp_path)


def test_the_front_link_is_read_beside_the_instances_and_a_wrong_one_is_said():
    """The socket way: where the front's link points is shown per instance, and a link that does not name the live
    instance (a switch cut off half-way, a hand edit) is a problem status says."""
    rows = "slot live releases/r2\nslot backup releases/r1\ninstance 8101 r1 11 200 r1 yes\ninstance 8102 r2 12 200 r2 yes\n"

    right = instances.parse_instances("front instance-8102.sock\n" + rows)
    assert [(i.port, i.front) for i in right.instances] == [(8101, False), (8102, True)] and right.front_problem is None

    wrong = instances.parse_instances("front instance-8101.sock\n" + rows)
    assert wrong.front_problem == ("the front's link names the backup instance of r1 on port 8101, not the live "
                                   "instance of r2 on port 8102")
    assert instances.parse_instances("front instance-9999.sock\n" + rows).front_problem == (
        "the front's link names instance-9999.sock, which no recorded instance listens on, not the live instance of r2 "
        "on port 8102")
    assert instances.parse_instances("front -\n" + rows).front_problem.startswith("the front's link is missing")
    assert instances.parse_instances(rows).front_problem is None  # no socket front: nothing to say
    assert {i.front for i in instances.parse_instances(rows).instances} == {None}
