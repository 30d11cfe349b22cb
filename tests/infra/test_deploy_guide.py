"""docs/deploy.md runs as written: each of its commands is run here, or checked against its tool's own help.

- ``cdk``: every subcommand and flag against ``cdk <subcommand> --help`` of the real CDK CLI (npm's
  ``aws-cdk``, installed for the session); ``cdk bootstrap`` and ``cdk destroy`` are run with the guide's
  context, without credentials, and must get past synthesising the app to the point where they need an
  account; ``cdk deploy``'s context is synthesised as ``cdk synth`` would.
- ``aws``: every service, operation and parameter against botocore's service models (the AWS CLI's own),
  the parameters an operation requires present, JSON values parsed, ``--query`` compiled as JMESPath;
  the AWS CLI's ``s3`` commands and ``ecr get-login-password`` (CLI customisations, in no service model)
  against the options their help lists, written down below.
- ``hf download`` against ``hf download --help`` of the installed huggingface_hub (1.0 or later).
- ``docker`` subcommands and flags against ``docker <subcommand> --help``.
- the teardown's Python one-liner is run, with the virtualenv's Python, on a versioned bucket in moto.
- shell built-ins and coreutils (``cd``, ``export``, ``read``, ``for``, ``mv``, ``tar``, ``sed``, ``cat``) and
  ``pip``/``npm`` installs are not checked; any other program fails the test until it is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.session
import jmespath
import pytest
from botocore import xform_name

from tests.infra.conftest import IMAGE, REPO, STACK, cdk_synth
from tests.moto_server import moto_server

GUIDE = (REPO / "docs" / "deploy.md").read_text()
CDK_CLI_VERSION = "2.1148.1"
"""npm's aws-cdk, the CLI the guide installs (``npm install -g aws-cdk``), pinned for the tests."""
VALUES = {
    "AWS_REGION": "us-east-1",
    "ACCOUNT": "123456789012",
    "AUDIO_BUCKET": "team-audio",
    "IMAGE": IMAGE,
    "MODEL_DATA": "s3://123456789012-asr-models-us-east-1/parakeet-tdt-0.6b-v2/model.tar.gz",
    "ALARM_EMAIL": "ops@example.com",
    "POLICY": "arn:aws:iam::123456789012:policy/TriggerPolicy",
}
"""What the guide's ``export`` lines (and the reader) set; BEDROCK_MODEL is taken from the guide itself."""
UNCHECKED = {"cd", "export", "read", "for", "done", "mv", "tar", "sed", "cat", "pip", "npm"}
GLOBAL_AWS_OPTIONS = {"query", "output", "region", "profile", "no-cli-pager", "debug", "endpoint-url"}
PAGINATION = {"max-items", "page-size", "starting-token", "no-paginate"}
AWS_CLI_CUSTOMISATIONS = {
    # `aws s3 cp help`, `aws s3 ls help`, `aws s3 mb help`, `aws ecr get-login-password help` (AWS CLI v2)
    ("s3", "cp"): {"recursive", "include", "exclude", "acl", "sse", "storage-class", "dryrun", "quiet"},
    ("s3", "ls"): {"recursive", "human-readable", "summarize", "page-size"},
    ("s3", "mb"): set(),
    ("ecr", "get-login-password"): set(),
}
ARGUMENT_RENAMES = {("sns", "subscribe"): {"notification-endpoint": "endpoint"}}
"""The AWS CLI's renames of model parameters the guide uses (awscli/customizations/argrename.py)."""
SESSION = botocore.session.get_session()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", GUIDE, flags=re.DOTALL)


def inline_commands() -> list[str]:
    """Commands the prose gives in code spans (``aws ...``, ``cdk ...``, ``hf ...``)."""
    return [m for m in re.findall(r"`((?:aws|cdk|hf) [^`]+)`", GUIDE)]


def logical_lines(block: str) -> list[str]:
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def segments(line: str) -> list[list[str]]:
    """The simple commands of one shell line: command substitutions, pipelines, lists, loops split apart,
    redirections and comments dropped, placeholders such as <you> kept as one word."""
    found: list[list[str]] = []
    line = re.sub(r"<[A-Za-z][^<>]*>", "PLACEHOLDER", line)
    for inner in re.findall(r"\$\(([^()]*)\)", line):
        found.extend(segments(inner))
    line = re.sub(r"\$\(([^()]*)\)", "SUBSTITUTED", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    current: list[str] = []
    tokens = iter(lexer)
    for token in tokens:
        if token in {";", "&&", "||", "|", "&"}:
            found.append(current)
            current = []
        elif token in {">", ">>", "<", "<<<", "2>", "2>>"}:
            next(tokens, None)  # the redirection's target
        elif not current and token in {"do", "then"}:
            continue
        else:
            current.append(token)
    found.append(current)
    # a leading NAME=value is an assignment (its $(...) was taken above), not a program
    found = [
        words[next((i for i, w in enumerate(words) if not re.match(r"^\w+=", w)), len(words)) :] for words in found
    ]
    return [words for words in found if words]


def substitute(words: list[str]) -> list[str]:
    values = {**VALUES, "BEDROCK_MODEL": guide_bedrock_model()}
    return [re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), m.group(0)), word) for word in words]


def guide_bedrock_model() -> str:
    (model,) = re.findall(r"export BEDROCK_MODEL=(\S+)", GUIDE)
    return model


def every_command() -> list[tuple[str, list[str]]]:
    """(where, words) of each command: 'block' for the guide's bash blocks, 'inline' for code spans."""
    commands = [
        ("block", words) for block in bash_blocks() for line in logical_lines(block) for words in segments(line)
    ]
    commands += [("inline", words) for text in inline_commands() for words in segments(text)]
    return commands


def program(words: list[str]) -> str:
    return Path(words[0]).name if words[0].endswith("python") else words[0]


def flags(words: list[str]) -> dict[str, str | None]:
    """``--name value`` / ``--flag`` / ``-c value`` pairs."""
    found: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("-") and word != "-":
            following = words[i + 1] if i + 1 < len(words) else None
            value = following if following is not None and not following.startswith("-") else None
            found.setdefault(word, value)
    return found


def test_the_guide_uses_only_programs_that_are_checked_or_plainly_shell():
    programs = {program(words) for _, words in every_command()}
    assert programs - UNCHECKED <= {"aws", "cdk", "hf", "docker", "python"}, programs - UNCHECKED
    assert {"aws", "cdk", "hf", "docker", "python"} <= programs, "each kind of check has something to check"


def aws_commands(where: str | None = None) -> list[tuple[str, list[str]]]:
    return [(w, substitute(words)) for w, words in every_command() if words[0] == "aws" and where in (None, w)]


@pytest.mark.parametrize("where, words", aws_commands(), ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else v)
def test_each_aws_command_is_an_operation_with_its_parameters(where, words):
    service, command, options = words[1], words[2], flags(words[3:])
    renames = ARGUMENT_RENAMES.get((service, command), {})
    names = {renames.get(name[2:], name[2:]): value for name, value in options.items()}
    for name, value in names.items():
        if name == "query":
            jmespath.compile(value)
        if name == "output":
            assert value in {"json", "text", "table", "yaml", "yaml-stream"}
    if (service, command) in AWS_CLI_CUSTOMISATIONS:
        assert set(names) - GLOBAL_AWS_OPTIONS <= AWS_CLI_CUSTOMISATIONS[service, command], words
        return
    model = SESSION.get_service_model(service)
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    assert command in operations, f"aws {service} has no {command}"
    operation = model.operation_model(operations[command])
    members = {xform_name(name, "-"): name for name in operation.input_shape.members}
    paginated = SESSION.get_paginator_model(service).get_paginator  # raises when the operation has none
    for name, value in names.items():
        if name in GLOBAL_AWS_OPTIONS:
            continue
        if name in PAGINATION:
            paginated(operations[command])
            continue
        assert name in members, f"aws {service} {command} has no --{name}"
        shape = operation.input_shape.members[members[name]]
        if value and value.lstrip().startswith(("[", "{")) and shape.type_name in ("list", "structure", "map"):
            json.loads(value)  # the guide's JSON parses
        if shape.type_name == "structure" and getattr(shape, "is_document_type", False):
            json.loads(value)
    if where == "block":  # prose may name an operation without its every parameter
        required = {xform_name(name, "-") for name in operation.input_shape.required_members}
        assert required <= set(names), f"aws {service} {command} lacks {required - set(names)}"


def help_options(text: str) -> set[str]:
    """Every ``--long`` and ``-s`` option a ``--help`` text lists (cdk's yargs, click, cobra)."""
    return set(re.findall(r"(?:^|[\s,\[])(--?[A-Za-z][\w-]*)", text))


@pytest.fixture(scope="session")
def cdk_cli(tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("cdk-cli")
    subprocess.run(
        [
            "npm",
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(prefix),
            f"aws-cdk@{CDK_CLI_VERSION}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return prefix / "node_modules" / ".bin" / "cdk"


def cdk_env(home: Path) -> dict[str, str]:
    """No credentials anywhere (environment, files, instance metadata), no version check or telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }


def cdk_commands() -> list[list[str]]:
    return [substitute(words) for where, words in every_command() if words[0] == "cdk" and where == "block"]


def test_each_cdk_command_and_flag_is_in_the_clis_help(cdk_cli, tmp_path):
    commands = cdk_commands() + [substitute(words) for where, words in every_command() if words[0] == "cdk"]
    assert {words[1] for words in commands} >= {"bootstrap", "deploy", "destroy"}
    helps: dict[str, str] = {}
    for words in commands:
        if words[1] not in helps:
            result = subprocess.run(
                [str(cdk_cli), words[1], "--help"], capture_output=True, text=True, env=cdk_env(tmp_path), timeout=120
            )
            assert result.returncode == 0, result.stderr[-2000:]
            assert result.stdout.startswith(f"cdk {words[1]}"), result.stdout[:200]
            helps[words[1]] = result.stdout
        unknown = set(flags(words[2:])) - help_options(helps[words[1]])
        assert not unknown, f"cdk {words[1]} has no {unknown}"


def guide_cdk(subcommand: str) -> list[str]:
    (words,) = [w for w in cdk_commands() if w[1] == subcommand]
    return words


@pytest.mark.parametrize("subcommand", ["bootstrap", "destroy"])
def test_bootstrap_and_destroy_as_written_get_past_the_synth_to_the_account(subcommand, cdk_cli, tmp_path):
    """Run from infra/ as the guide does, with its context and no credentials: the CLI synthesises the app
    (cdk.json's app command, cdk-nag included), then stops where it needs the account, and only there.
    ``--force`` answers destroy's confirmation (no terminal here); ``--no-notices`` spares a network call."""
    words = guide_cdk(subcommand)
    extra = ["--force"] if subcommand == "destroy" else []
    result = subprocess.run(
        [str(cdk_cli), *words[1:], *extra, "--no-notices", "--output", str(tmp_path / "cdk.out")],
        cwd=REPO / "infra",
        capture_output=True,
        text=True,
        env=cdk_env(tmp_path),
        timeout=400,
    )
    output = result.stdout + result.stderr
    assert "inputBucketName is required" not in output, output[-3000:]
    needs_account = re.search("no credentials have been configured|Unable to resolve AWS account", output)
    assert result.returncode != 0 and needs_account, output[-3000:]
    assert (tmp_path / "cdk.out" / f"{STACK}.template.json").exists(), "synthesised first"
    if subcommand == "bootstrap":
        assert f"Bootstrapping environment aws://{VALUES['ACCOUNT']}/{VALUES['AWS_REGION']}" in output
    else:
        assert f"{STACK}: destroying" in output


def test_without_the_context_bootstrap_stops_at_the_synth(cdk_cli, tmp_path):
    """What the guide said before: the check above would pass for a command that never synthesised."""
    result = subprocess.run(
        [str(cdk_cli), "bootstrap", "aws://123456789012/us-east-1", "--no-notices", "--output", str(tmp_path / "o")],
        cwd=REPO / "infra",
        capture_output=True,
        text=True,
        env=cdk_env(tmp_path),
        timeout=400,
    )
    assert result.returncode != 0 and "inputBucketName is required" in result.stdout + result.stderr


def readme_deploy_commands() -> list[list[str]]:
    """The commands of README's "Deploy in brief" block, the ``export`` values filled in."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Deploy in brief\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    return [substitute(words) for line in logical_lines(block) for words in segments(line)]


def test_readmes_deploy_in_brief_is_the_guides_tested_commands():
    """README's bootstrap is the guide's, word for word (run above); its deploy gives a subset of the
    guide's context (synthesised below), so README's commands run as the guide's do."""
    commands = {words[1]: words for words in readme_deploy_commands() if words[0] == "cdk"}
    assert set(commands) == {"bootstrap", "deploy"}, commands
    assert commands["bootstrap"] == guide_cdk("bootstrap")

    def context(words: list[str]) -> set[str]:
        return {value for flag, value in zip(words, words[1:], strict=False) if flag == "-c"}

    assert "inputBucketName=" + VALUES["AUDIO_BUCKET"] in context(commands["deploy"])
    assert context(commands["deploy"]) <= context(guide_cdk("deploy"))
    others = {words[0] for words in readme_deploy_commands()} - {"cdk"} - UNCHECKED
    assert not others, f"README runs programs the guide's test does not check: {others}"


def test_deploys_context_synthesises(tmp_path):
    words = guide_cdk("deploy")
    context = dict(value.split("=", 1) for flag, value in zip(words, words[1:], strict=False) if flag == "-c")
    assert context["bedrockModelId"] == guide_bedrock_model() and context["alarmEmail"] == VALUES["ALARM_EMAIL"]
    result = cdk_synth(tmp_path, context)
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / f"{STACK}.template.json").read_text())
    assert any(r["Properties"].get("Protocol") == "email" for r in template["Resources"].values() if "Properties" in r)


def test_the_guides_profile_is_the_one_for_its_region():
    assert re.search(r"export AWS_REGION=(\S+)", GUIDE).group(1) == "us-east-1"
    assert guide_bedrock_model().startswith("us."), "a US profile for us-east-1"
    assert "huggingface-cli" not in [w for _, words in every_command() for w in words[:1]]


def test_hf_download_as_written(tmp_path):
    import huggingface_hub

    assert int(huggingface_hub.__version__.split(".")[0]) >= 1, "`hf` is huggingface_hub 1.0's CLI"
    hf = Path(sys.executable).parent / "hf"
    (words,) = [w for where, w in every_command() if w[0] == "hf" and where == "block"]
    result = subprocess.run([str(hf), words[1], "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert set(flags(words[2:])) <= help_options(result.stdout), words


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_commands_as_written():
    for _, words in every_command():
        if words[0] == "docker":
            result = subprocess.run(["docker", words[1], "--help"], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert set(flags(words[2:])) <= help_options(result.stdout), words


def test_the_teardown_one_liner_empties_and_deletes_a_versioned_bucket(monkeypatch):
    (line,) = [line for b in bash_blocks() for line in logical_lines(b) if "object_versions.delete()" in line]
    words = shlex.split(line)
    assert words[0] == ".venv/bin/python", "the virtualenv's Python, which has boto3"
    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="kept-results")
        s3.put_bucket_versioning(Bucket="kept-results", VersioningConfiguration={"Status": "Enabled"})
        for body in (b"one", b"two"):
            s3.put_object(Bucket="kept-results", Key="transcripts/a.out", Body=body)
        s3.delete_object(Bucket="kept-results", Key="transcripts/a.out")  # a delete marker too
        python = REPO / ".venv" / "bin" / "python"
        command = [str(python if python.exists() else sys.executable), *words[1:-1], "kept-results"]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
        assert result.returncode == 0, result.stderr
        assert "kept-results" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
