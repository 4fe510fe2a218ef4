"""
A small Dockerfile linter: a documented subset of hadolint's rules, in plain Python.

The tests lint docker/Dockerfile with hadolint when its binary is on PATH and with this module
otherwise, so the rules below keep hadolint's codes and meanings:

- DL3003 `cd` in a RUN: use WORKDIR to switch to a directory.
- DL3006 FROM without an explicit tag (a digest, `scratch` or an earlier stage's alias is fine).
- DL3007 FROM with the tag `latest`.
- DL3009 a RUN with `apt-get update` that does not `rm -rf /var/lib/apt/lists/*` (or use a cache
  mount there); as in hadolint, only in the last stage and in stages a later FROM builds on.
- DL3015 `apt-get install` without `--no-install-recommends`.
- DL3020 ADD of local files or folders: COPY them (ADD of URLs and archives is fine).
- DL3025 CMD or ENTRYPOINT in shell form: use the JSON (exec) form.
- DL3042 `pip install` without `--no-cache-dir`, unless a truthy PIP_NO_CACHE_DIR is set by ENV in
  the stage (or a stage it builds on) or in the RUN itself.
- DL4006 a RUN with a pipe while the stage's SHELL lacks `-o pipefail` (bash, zsh, ash); reset at
  every FROM, as in hadolint.

Not implemented: every other hadolint rule, in particular DL3008 (apt version pins), which ROS
images do not use, and ShellCheck's checks of RUN scripts. Suppress a rule for one instruction
with `# hadolint ignore=DL3003,DL3009` on the line before it, or for the file with
`# hadolint global ignore=...`, as in hadolint. ARG defaults declared before the first FROM are
substituted into FROM lines before DL3006 and DL3007 look at them (an image name still holding a
variable is not checked); unlike hadolint, DL3006 reads `registry:port/name` as untagged. Heredocs
are read; the `# escape=` directive is not (the escape character is always a backslash). Usage:
`python -m deft_bringup.dockerlint [--ignore CODE]... Dockerfile...` (exit 1 on any finding).
No rclpy: the module only reads text.
"""

import argparse
from dataclasses import dataclass
import json
import re
import shlex
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

RULES: Dict[str, str] = {
    'DL3003': 'Use WORKDIR to switch to a directory',
    'DL3006': 'Always tag the version of an image explicitly',
    'DL3007': 'Using latest is prone to errors if the image will ever update. Pin the version '
              'explicitly to a release tag',
    'DL3009': 'Delete the apt-get lists after installing something',
    'DL3015': 'Avoid additional packages by specifying `--no-install-recommends`',
    'DL3020': 'Use COPY instead of ADD for files and folders',
    'DL3025': 'Use arguments JSON notation for CMD and ENTRYPOINT arguments',
    'DL3042': 'Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`',
    'DL4006': 'Set the SHELL option -o pipefail before RUN with a pipe in it',
}

_TRUTHY = {'1', 'true', 'True', 'TRUE', 'on', 'On', 'ON', 'yes', 'Yes', 'YES'}
_SEPARATORS = {'&&', '||', ';', ';;', '|', '|&', '&', '(', ')', '{', '}', '\n'}
# Words before a command's name that are not the command (shell keywords, wrappers).
_PREFIXES = {'if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', 'sudo', 'exec', 'time',
             'fi', 'done', 'esac', 'command', 'nohup', 'env'}
_ARCHIVES = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz', '.tbz2', '.tb2', '.tar.xz', '.txz',
             '.tar.lz', '.tar.lzma', '.tlz', '.tar.zst', '.tzst', '.tar.Z', '.tZ', '.gz', '.bz2',
             '.xz', '.zip')
_NON_POSIX_SHELLS = ('pwsh', 'powershell', 'cmd')
_PIPEFAIL_SHELLS = ('bash', 'zsh', 'ash')
_IGNORE = re.compile(r'#\s*hadolint\s+(global\s+)?ignore\s*=\s*([A-Z0-9, ]+)')
_HEREDOC = re.compile(r'<<-?\s*["\']?([A-Za-z_][A-Za-z0-9_]*)["\']?')
_VARIABLE = re.compile(
    r'\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))')


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case), its arguments, its first line."""

    keyword: str
    args: str
    line: int
    ignored: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A rule an instruction breaks."""

    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f'{self.line} {self.code} {self.message}'


def parse(text: str) -> Tuple[List[Instruction], Set[str]]:
    """
    Split a Dockerfile into instructions (continuations joined, comments dropped).

    Returns the instructions and the codes ignored for the whole file (`hadolint global ignore`).
    Heredocs (`RUN <<EOF`) are kept in the instruction's arguments, one line per line.
    """
    lines = text.splitlines()
    instructions: List[Instruction] = []
    global_ignored: Set[str] = set()
    pending: Tuple[str, ...] = ()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith('#'):
            match = _IGNORE.search(stripped)
            if match:
                codes = tuple(c.strip() for c in match.group(2).split(',') if c.strip())
                if match.group(1):
                    global_ignored.update(codes)
                else:
                    pending += codes
            i += 1
            continue
        start = i
        parts = []
        line = lines[i].rstrip()
        while line.endswith('\\'):
            parts.append(line[:-1].strip())
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith('#')):
                i += 1
            line = lines[i].rstrip() if i < len(lines) else ''
        parts.append(line.strip())
        i += 1
        joined = ' '.join(p for p in parts if p)
        keyword, _, args = joined.partition(' ')
        for word in _HEREDOC.findall(args) if keyword.upper() in ('RUN', 'COPY', 'ADD') else ():
            body = []
            while i < len(lines) and lines[i].strip() != word:
                body.append(lines[i])
                i += 1
            i += 1
            args += '\n' + '\n'.join(body)
        instructions.append(Instruction(keyword.upper(), args.strip(), start + 1, pending))
        pending = ()
    return instructions, global_ignored


def _json_list(args: str) -> Optional[List[str]]:
    """Return the exec-form (JSON array of strings) arguments, or None for the shell form."""
    if not args.startswith('['):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _split_flags(args: str) -> Tuple[List[str], str]:
    """Split leading `--flag=value` options (RUN --mount, COPY --from) from the rest."""
    flags = []
    rest = args
    while rest.startswith('--'):
        flag, _, rest = rest.partition(' ')
        flags.append(flag)
        rest = rest.lstrip()
    return flags, rest


def commands(script: str) -> List[List[str]]:
    """Split a shell script into simple commands, each a list of words, name first."""
    lexer = shlex.shlex(script.replace('\n', ' ; '), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to whitespace and the operators around it
        tokens = re.findall(r'&&|\|\||;;|[|;&(){}]|[^\s|;&(){}]+', script)
    result: List[List[str]] = []
    current: List[str] = []
    for token in tokens + [';']:
        if token in _SEPARATORS:
            words = current
            while words and (words[0] in _PREFIXES or re.match(r'^[A-Za-z_]\w*=', words[0])):
                words = words[1:]
            if words:
                result.append(words)
            current = []
        else:
            current.append(token)
    return result


def _has_pipe(script: str) -> bool:
    """Whether a shell script pipes one command into another (`|`, not `||`)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return any(token in ('|', '|&') for token in lexer)
    except ValueError:
        return bool(re.search(r'(?<!\|)\|(?!\|)', script))


def _name(command: Sequence[str]) -> str:
    return command[0].rsplit('/', 1)[-1]


def _is_pip_install(command: Sequence[str]) -> bool:
    name = _name(command)
    if re.fullmatch(r'pip[0-9.]*', name):
        return 'install' in command[1:]
    if re.fullmatch(r'python[0-9.]*', name):
        args = list(command[1:])
        return any(args[k:k + 3] == ['-m', 'pip', 'install'] for k in range(len(args)))
    return False


def _removes_apt_lists(command: Sequence[str]) -> bool:
    if _name(command) != 'rm':
        return False
    flags = ''.join(w[1:] for w in command[1:] if w.startswith('-') and not w.startswith('--'))
    long_flags = {w for w in command[1:] if w.startswith('--')}
    recursive = 'r' in flags or 'R' in flags or '--recursive' in long_flags
    force = 'f' in flags or '--force' in long_flags
    targets = {w.rstrip('/') for w in command[1:] if not w.startswith('-')}
    return recursive and force and bool(targets & {'/var/lib/apt/lists/*', '/var/lib/apt/lists'})


def _substitute(text: str, values: Dict[str, str]) -> str:
    def replace(match: 're.Match[str]') -> str:
        name = match.group(1) or match.group(3)
        if name in values:
            return values[name]
        if match.group(2) is not None:
            return match.group(2)
        return match.group(0)
    return _VARIABLE.sub(replace, text)


def _image_parts(reference: str) -> Tuple[str, Optional[str], Optional[str]]:
    """Split `[registry/]name[:tag][@digest]` into name, tag and digest."""
    name, _, digest = reference.partition('@')
    tag = None
    if ':' in name.rsplit('/', 1)[-1]:
        name, _, tag = name.rpartition(':')
    return name, tag, digest or None


def env_pairs(args: str) -> Dict[str, str]:
    """Return the variables an ENV (or ARG) instruction sets: `K=V ...` or the legacy `K V`."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    if words and '=' not in words[0]:
        return {words[0]: ' '.join(words[1:])}
    return dict(w.partition('=')[::2] for w in words if '=' in w)


def _pipefail_shell(argv: Sequence[str]) -> bool:
    if not argv:
        return False
    name = _name(argv)
    if any(name.lower().startswith(s) for s in _NON_POSIX_SHELLS):
        return True
    if name not in _PIPEFAIL_SHELLS:
        return False
    for k in range(1, len(argv) - 1):
        word = argv[k]
        if word.startswith('-') and not word.startswith('--') and 'o' in word[1:]:
            if argv[k + 1] == 'pipefail':
                return True
    return False


@dataclass
class _Stage:
    alias: str
    base: str
    pipefail: bool = False
    pip_no_cache: bool = False


def lint(text: str, ignore: Iterable[str] = ()) -> List[Finding]:
    """Lint Dockerfile text with the rules in RULES; codes in `ignore` are not reported."""
    instructions, global_ignored = parse(text)
    ignored = set(ignore) | global_ignored
    findings: List[Finding] = []
    global_args: Dict[str, str] = {}
    stages: List[_Stage] = []
    # DL3009 findings per stage index: reported for the last stage and stages built on later.
    apt_lists: Dict[int, List[Finding]] = {}

    def report(instruction: Instruction, code: str, stage: Optional[int] = None) -> None:
        if code in ignored or code in instruction.ignored:
            return
        finding = Finding(instruction.line, code, RULES[code])
        if stage is None:
            findings.append(finding)
        else:
            apt_lists.setdefault(stage, []).append(finding)

    for ins in instructions:
        if ins.keyword == 'ARG' and not stages:
            for key, value in env_pairs(ins.args).items():
                global_args[key] = value
            continue
        if ins.keyword == 'FROM':
            _, rest = _split_flags(ins.args)
            words = rest.split()
            reference = _substitute(words[0], global_args) if words else ''
            alias = words[2] if len(words) >= 3 and words[1].upper() == 'AS' else ''
            aliases = {s.alias.lower(): s for s in stages if s.alias}
            parent = aliases.get(reference.lower())
            name, tag, digest = _image_parts(reference)
            if parent is None and reference != 'scratch' and not digest and '$' not in name:
                if tag is None:
                    report(ins, 'DL3006')
                elif tag == 'latest':
                    report(ins, 'DL3007')
            stages.append(_Stage(alias, reference.lower(), False,
                                 parent.pip_no_cache if parent else False))
            continue
        if not stages:
            stages.append(_Stage('', ''))
        stage = stages[-1]
        if ins.keyword == 'SHELL':
            stage.pipefail = _pipefail_shell(_json_list(ins.args) or [])
        elif ins.keyword == 'ENV':
            value = env_pairs(ins.args).get('PIP_NO_CACHE_DIR')
            if value is not None:
                stage.pip_no_cache = value in _TRUTHY
        elif ins.keyword in ('CMD', 'ENTRYPOINT'):
            if _json_list(ins.args) is None:
                report(ins, 'DL3025')
        elif ins.keyword == 'ADD':
            flags, rest = _split_flags(ins.args)
            words = _json_list(rest)
            if words is None:
                words = rest.split()
            sources = words[:-1]
            if any(not re.match(r'^(https?|ftp|git)://|^git@', s) and not s.endswith(_ARCHIVES)
                   for s in sources):
                report(ins, 'DL3020')
        elif ins.keyword == 'RUN':
            flags, script = _split_flags(ins.args)
            argv = _json_list(script)
            cmds = [argv] if argv else commands(script)  # exec form: one command, no shell
            if any(_name(c) == 'cd' for c in cmds):
                report(ins, 'DL3003')
            if argv is None and _has_pipe(script) and not stage.pipefail:
                report(ins, 'DL4006')
            installs = [c for c in cmds if _name(c) == 'apt-get' and 'install' in c[1:]]
            if any('--no-install-recommends' not in c
                   and 'APT::Install-Recommends=false' not in ' '.join(c) for c in installs):
                report(ins, 'DL3015')
            updates = any(_name(c) == 'apt-get' and 'update' in c[1:] for c in cmds)
            cached = any('type=cache' in f and '/var/lib/apt' in f for f in flags)
            if updates and not cached and not any(_removes_apt_lists(c) for c in cmds):
                report(ins, 'DL3009', stage=len(stages) - 1)
            no_cache_env = re.search(r'PIP_NO_CACHE_DIR=(\S+)', script)
            if not stage.pip_no_cache and not (no_cache_env
                                                and no_cache_env.group(1) in _TRUTHY):
                if any(_is_pip_install(c) and '--no-cache-dir' not in c for c in cmds):
                    report(ins, 'DL3042')

    later_bases = [s.base for s in stages]
    for index, stage_findings in apt_lists.items():
        stage = stages[index]
        if index == len(stages) - 1 or (stage.alias and stage.alias.lower()
                                        in later_bases[index + 1:]):
            findings.extend(stage_findings)
    return sorted(findings, key=lambda f: (f.line, f.code))


def lint_file(path: str, ignore: Iterable[str] = ()) -> List[Finding]:
    """Lint the Dockerfile at `path`."""
    with open(path, encoding='utf-8') as f:
        return lint(f.read(), ignore)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Lint the files named on the command line; 1 when anything is found."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--ignore', action='append', default=[], metavar='CODE',
                        help='a rule code not to report (repeatable)')
    parser.add_argument('files', nargs='+', metavar='Dockerfile')
    options = parser.parse_args(argv)
    found = False
    for path in options.files:
        for finding in lint_file(path, options.ignore):
            print(f'{path}:{finding}')
            found = True
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
