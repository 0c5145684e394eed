package Test::Nginx::Util;

# Project-local implementation of the Test::Nginx "Util" layer: global
# settings, nginx.conf generation, nginx process management, error-log
# reading and the embedded TCP/UDP mock servers.
#
# It is written from scratch for ngx_http_xray's test suite and aims to accept
# the same t/*.t files as openresty/test-nginx (Test::Nginx::Socket format).
# The request/response side lives in Test::Nginx::Socket.
#
# Every wait in here is bounded in count and time: a hung nginx or mock server
# must never hang `prove`.

use strict;
use warnings;

use Exporter ();
use Carp qw(croak);
use Config ();
use Cwd ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use List::Util qw(shuffle);
use POSIX qw(:sys_wait_h SIGQUIT SIGKILL SIGTERM);
use Scalar::Util qw(looks_like_number);
use Socket qw(SOCK_STREAM SOCK_DGRAM);
use Test::More ();
use Test::LongString ();
use Time::HiRes qw(sleep time);

our @ISA = ('Exporter');
our $VERSION = '0.29';    # the Test::Nginx API level we follow

our @EXPORT = qw(
    env_to_nginx is_str check_accum_error_log is_running
    $NoLongString no_long_string
    $ServerAddr server_addr $ServerName server_name
    parse_time verbose sleep_time bail_out add_cleanup_handler
    access_log_data error_log_data setup_server_root write_config_file
    get_canon_version get_nginx_version trim show_all_chars parse_headers
    run_tests get_pid_from_pidfile
    $ServerPortForClient $ServerPort $NginxVersion $PidFile $ServRoot
    $ConfFile $RunTestHelper $CheckErrorLog $CheckShutdownErrorLog
    $FilterHttpConfig $NoNginxManager $RepeatEach $CheckLeak $Benchmark
    $BenchmarkWarmup
    add_block_preprocessor timeout worker_connections workers
    master_on master_off config_preamble repeat_each
    master_process_enabled log_level no_shuffle no_root_location
    html_dir server_root server_port server_port_for_client
    no_nginx_manager use_hup
);

# ---------------------------------------------------------------------------
# Settings (same environment variables and defaults as Test::Nginx)
# ---------------------------------------------------------------------------

our $Verbose              = $ENV{TEST_NGINX_VERBOSE};
our $NoLongString;
our $NoShuffle            = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoNginxManager       = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $EventType            = $ENV{TEST_NGINX_EVENT_TYPE};
our $ReusePort            = $ENV{TEST_NGINX_REUSE_PORT};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort || 1984;
our $NoRootLocation       = 0;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ForceRestartOnTest   = defined $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST}
                            ? $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} : 1;
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
our $RepeatEach           = 1;
our $ConfigPreamble       = '';
our $FilterHttpConfig;
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;

# Modes of the real runner that this one does not implement; they are
# exported as constants so that code testing them keeps compiling.
our $CheckLeak       = 0;
our $Benchmark       = 0;
our $BenchmarkWarmup = 0;
our $UseHup          = 0;

# Hooks filled in by Test::Nginx::Socket.
our $RunTestHelper;
our $CheckErrorLog;
our $CheckShutdownErrorLog;

our ($NginxVersion, $NginxRawVersion, $OpenSSLVersion);

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

our $ServRoot   = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');

# What nginx printed on its stderr while starting.  Debian's nginx is built
# with --error-log-path=stderr, so configuration-time messages ([emerg]
# unknown directive...) never reach logs/error.log; we capture them in this
# file (inside logs/ so that servroot stays removable by the real runner) and
# treat them as the first lines of the error log.
our $StartupStderrFile = File::Spec->catfile($LogDir, 'nginx-startup-stderr.log');
our @StartupLines;

# Runtime state.
our $ErrLogFilePos = 0;
our $PrevBlock;
our $PrevConfig;
our $FirstTime = 1;
our ($TcpServerPid, $UdpServerPid);
our $MainPid = $$;          # END-time cleanup only in the process that ran the tests
our $InSubprocess = 0;
our $NginxStartedByUs = 0;  # whether a pid file we must clean up may exist

# Upper bounds (seconds) for the waits we do around nginx itself.
our $StartTimeout = 20;     # the `nginx` command line must have returned by then
our $ReadyTimeout = 5;      # pid file + listening socket must be there by then

srand($$ ^ time);

# ---------------------------------------------------------------------------
# Small setters/getters (exported, same behaviour as Test::Nginx)
# ---------------------------------------------------------------------------

sub verbose { return $Verbose }
sub sleep_time { return $TestNginxSleep }
sub no_long_string () { $NoLongString = 1 }
sub no_shuffle () { $NoShuffle = 1 }
sub no_nginx_manager () { $NoNginxManager = 1 }
sub no_root_location () { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub config_preamble ($) { $ConfigPreamble = shift }
sub html_dir () { return $HtmlDir }
sub server_root () { return $ServRoot }

sub use_hup () {
    warn "WARNING: use_hup() is not supported by this Test::Nginx "
        . "implementation; nginx is restarted for every test block.\n";
}

sub _getset {
    my ($ref, @args) = @_;
    $$ref = $args[0] if @args;
    return $$ref;
}

sub timeout (@)                { return _getset(\$Timeout, @_) }
sub server_addr (@)            { return _getset(\$ServerAddr, @_) }
sub server_name (@)            { return _getset(\$ServerName, @_) }
sub server_port (@)            { return _getset(\$ServerPort, @_) }
sub server_port_for_client (@) { return _getset(\$ServerPortForClient, @_) }
sub repeat_each (@)            { return _getset(\$RepeatEach, @_) }
sub worker_connections (@)     { return _getset(\$WorkerConnections, @_) }
sub workers (@)                { return _getset(\$Workers, @_) }
sub log_level (@)              { return _getset(\$LogLevel, @_) }

sub master_on ()  { $MasterProcessEnabled = 'on' }
sub master_off () { $MasterProcessEnabled = 'off' }

sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = $_[0] ? 'on' : 'off';
        return;
    }
    return $MasterProcessEnabled;
}

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

# Preprocessors added later run first, like in Test::Nginx.
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }

# "100ms" -> 0.1, "2s" -> 2, "1.5" -> 1.5
sub parse_time ($) {
    my $tm = shift;
    return $tm unless defined $tm;
    if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
        $tm = $tm / 1000;
    } else {
        $tm =~ s/([^_a-zA-Z])s$/$1/;
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub show_all_chars ($) {
    my $s = shift;
    $s =~ s/\n/\\n/gs;
    $s =~ s/\r/\\r/gs;
    $s =~ s/\t/\\t/gs;
    return $s;
}

# "Name: value" per line; "!Name" means "must be absent" (value undef).
sub parse_headers ($) {
    my $s = shift;
    my %headers;
    for my $line (split /\n/, $s) {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            $headers{$line} = undef;
        } else {
            my ($key, $val) = split /\s*:\s*/, $line, 2;
            $headers{$key} = defined $val ? $val : '';
        }
    }
    return \%headers;
}

# String comparison that understands qr// expectations and no_long_string(),
# and prints a line diff for multi-line mismatches.
sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    my $ok;
    if ($NoLongString) {
        $ok = Test::More::is($got, $expected, $desc);
    } else {
        $ok = Test::LongString::is_string($got, $expected, $desc);
    }
    diag_diff($got, $expected) unless $ok;
    return $ok;
}

# Unified diff of expected vs got, only when it adds information.
sub diag_diff {
    my ($got, $expected) = @_;
    return unless defined $got && defined $expected;
    return unless $got =~ /\n./s || $expected =~ /\n./s;
    my $diff = eval {
        require Text::Diff;
        Text::Diff::diff(\$expected, \$got,
                         { STYLE => 'Unified', FILENAME_A => 'expected',
                           FILENAME_B => 'got' });
    };
    Test::More::diag($diff) if defined $diff && length $diff;
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

sub get_canon_version (@) {
    return sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub _canon_openssl_version {
    my ($a, $b, $c, $letter) = @_;
    return sprintf "%d.%03d%03d%03d", $a, $b, $c, ord($letter) - ord('a')
        if defined $letter;
    return get_canon_version($a, $b, $c);
}

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        $out //= '';
        bail_out("Failed to get the version of the nginx binary "
                 . "\"$NginxBinary\": $out");
    }
    if ($out =~ m{built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?}s) {
        $OpenSSLVersion = _canon_openssl_version($1, $2, $3, $4);
    }
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return get_canon_version($1, $2, $3);
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

# kill(0) also succeeds for zombies; nginx daemons are not our children and
# may stay zombies for a moment until init reaps them, so look at /proc too.
sub is_running ($) {
    my $pid = shift;
    return 0 unless $pid && kill(0, $pid);
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        close $fh;
        return 0 if $stat =~ /^\d+ \(.*\) Z /s;
    }
    return 1;
}

sub _children_of {
    my $ppid = shift;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $d (readdir $dh) {
        next unless $d =~ /^\d+$/;
        open my $fh, '<', "/proc/$d/stat" or next;
        my $stat = <$fh> // '';
        close $fh;
        push @kids, $d if $stat =~ /^\d+ \(.*\) \S+ (\d+) /s && $1 == $ppid;
    }
    closedir $dh;
    return @kids;
}

sub get_pid_from_pidfile ($) {
    my ($name) = @_;
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> } // '';
    close $in;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# Stop one of our own forked helpers (TCP/UDP mock servers): TERM, bounded
# wait, KILL.  They are our children, so they are reaped here.
sub kill_child ($$) {
    my ($pid, $name) = @_;
    return unless defined $pid;
    kill SIGTERM, $pid;
    my $deadline = time + 2;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.01;
    }
    warn "$name - helper process $pid did not exit after SIGTERM; killing it\n";
    kill SIGKILL, $pid;
    $deadline = time + 2;
    while (time < $deadline) {
        return if waitpid($pid, WNOHANG) != 0;
        sleep 0.01;
    }
}

# Stop the nginx server of the previous block: QUIT (graceful), bounded wait,
# then KILL the master and its workers.
sub stop_nginx ($) {
    my ($name) = @_;
    my $pid = get_pid_from_pidfile($name);
    if (!$pid || !is_running($pid)) {
        unlink $PidFile if -f $PidFile;
        return;
    }
    warn "sending QUIT signal to nginx $pid\n" if $Verbose;
    my @kids = _children_of($pid);
    kill SIGQUIT, $pid;
    my $wait = timeout();
    $wait = 1 if $wait < 1;
    my $deadline = time + $wait;
    while (time < $deadline && is_running($pid)) {
        sleep 0.01;
    }
    if (is_running($pid)) {
        warn "$name - nginx $pid did not exit within ${wait}s after SIGQUIT; killing it\n";
        @kids = (@kids, _children_of($pid));
        kill SIGKILL, $pid, @kids;
        $deadline = time + 2;
        while (time < $deadline && is_running($pid)) {
            sleep 0.01;
        }
    }
    # Workers of a KILLed master (or that outlived it) must not linger.
    for my $kid (@kids) {
        kill SIGKILL, $kid if is_running($kid);
    }
    unlink $PidFile if -f $PidFile;
}

sub cleanup () {
    $_->() for @CleanupHandlers;
    if (defined $UdpServerPid) {
        kill_child($UdpServerPid, 'cleanup');
        undef $UdpServerPid;
    }
    if (defined $TcpServerPid) {
        kill_child($TcpServerPid, 'cleanup');
        undef $TcpServerPid;
    }
}

# ---------------------------------------------------------------------------
# Server root, configuration, user files
# ---------------------------------------------------------------------------

sub setup_server_root ($) {
    my $first_time = shift;
    if (-d $ServRoot) {
        # Only remove what we create, in case TEST_NGINX_SERVROOT points
        # somewhere with real data.
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_cache"),
                    glob("$ServRoot/*_temp"));
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $dir;
        make_path($dir) or bail_out("Failed to do mkdir $dir: $!\n");
    }
    my $index_file = "$HtmlDir/index.html";
    open my $out, '>', $index_file
        or bail_out("Can't open $index_file for writing: $!\n");
    print $out '<html><head><title>It works!</title></head>'
        . '<body>It works!</body></html>';
    close $out;
}

sub gen_rand_port (;$$) {
    my ($tries, $used) = @_;
    $tries //= 1000;
    $used //= {};
    for (1 .. $tries) {
        my $port = int(rand 63550) + 1985;
        next if $used->{$port};
        my $sock = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                         LocalPort => $port, Proto => 'tcp',
                                         Listen => 1);
        if ($sock) {
            close $sock;
            return $port;
        }
    }
    return undef;
}

# Replace $TEST_NGINX_FOO by $ENV{TEST_NGINX_FOO}; TEST_NGINX_RAND_PORT_N
# gets a free random port, stable within one block.
sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;
    my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            if (!defined $rand_ports->{$var}) {
                my $port = gen_rand_port(1000, \%used);
                bail_out("$name - Cannot find an available listening port "
                         . "number for $var.\n") unless defined $port;
                $rand_ports->{$var} = $port;
                $used{$port} = 1;
            }
            $val = $rand_ports->{$var};
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $val = $ENV{$var};
        }
        $val;
    }ge;
    return $text;
}

sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        # ">>> name [touch-date]" lines introduce each file
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$1, undef, $2];
            } elsif (@list) {
                $list[-1][1] .= $line;
            }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: " . ref($files)
                 . ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{^(.*)/}) {
            my $dir = $1;
            make_path($dir) unless -d $dir;
        }
        $body = expand_env_in_text($body, $name, $rand_ports);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            local $ENV{TZ} = 'GMT';
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - touch -t '$date' $path failed\n");
        }
    }
}

sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;

    my $http_config = expand_env_in_text($block->http_config, $name, $rand_ports) // '';
    $http_config = $FilterHttpConfig->($http_config) if $FilterHttpConfig;

    # TEST_NGINX_LOAD_MODULES: load_module lines go right after the block's
    # main_config (before http {}), exactly where Test::Nginx puts them.
    my $main_config = $block->main_config // '';
    if ($LoadModules) {
        my @mods = grep { length } split /\s+/, $LoadModules;
        $main_config .= join(' ', map { "load_module $_;" } @mods) if @mods;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);
    my $post_main_config =
        expand_env_in_text($block->post_main_config, $name, $rand_ports) // '';

    $config //= '';
    my $err_log_file = $block->error_log_file || $ErrLogFile;
    my $server_name = $block->server_name // $ServerName;
    (my $quoted_name = $server_name) =~ s/(['\\])/\\$1/g;
    my $listen_opts = $ReusePort ? ' reuseport' : '';

    my $env_lines = join '', map {
        my $v = $_;
        $v = "'$v'" if $v =~ /\s/;
        "env $v;\n";
    } @EnvToNginx;

    my $root_location = $NoRootLocation ? '' : <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_

    my $events_use = $EventType ? "    use $EventType;\n" : '';
    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0             ? "user root;\n"
             :                       '';

    # Same layout as Test::Nginx's generated nginx.conf, except that the
    # test server listens on $ServerAddr (127.0.0.1) only.
    my $conf = <<"_EOC_";
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
env MOCKEAGAIN_VERBOSE;
env MOCKEAGAIN;
env MOCKEAGAIN_WRITE_TIMEOUT_PATTERN;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env DYLD_INSERT_LIBRARIES;
env DYLD_FORCE_FLAT_NAMESPACE;
$env_lines
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$http_config

    server {
        listen          $ServerAddr:$ServerPort$listen_opts;
        server_name     '$quoted_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
$events_use}
env ASAN_OPTIONS;
env MOCKNOEAGAIN_VERBOSE;
env MOCKNOEAGAIN;
$user
_EOC_

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out $conf;
    close $out;
}

# ---------------------------------------------------------------------------
# Starting nginx
# ---------------------------------------------------------------------------

sub _slurp {
    my $file = shift;
    open my $in, '<', $file or return '';
    local $/;
    my $data = <$in> // '';
    close $in;
    return $data;
}

# Run the nginx command line (which daemonizes and returns) with its stderr
# captured.  Returns ($status, $exit_code, $stderr); $status is -1 when it
# could not be run or did not return within $StartTimeout seconds.
sub run_nginx_command ($) {
    my ($name) = @_;
    my $cmd = "exec $NginxBinary -p $ServRoot/ -c $ConfFile";
    warn "running: $cmd\n" if $Verbose;

    my $pid = fork();
    if (!defined $pid) {
        return (-1, undef, "fork() failed: $!");
    }
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $StartupStderrFile or POSIX::_exit(126);
        exec '/bin/sh', '-c', $cmd or POSIX::_exit(127);
    }

    my $deadline = time + $StartTimeout;
    my $status;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { $status = $?; last }
        if ($r < 0) { $status = -1; last }
        if (time > $deadline) {
            kill SIGKILL, $pid;
            waitpid($pid, 0);
            return (-1, undef, _slurp($StartupStderrFile)
                    . "\n(the nginx command did not return within "
                    . "${StartTimeout}s and was killed)\n");
        }
        sleep 0.005;
    }
    my $stderr = _slurp($StartupStderrFile);
    return ($status, $status >= 0 ? ($status >> 8) : undef, $stderr);
}

# After a successful start: wait (bounded) for the pid file and for the
# listening socket, without connecting to it (a probe connection would add
# "client closed connection" lines to an info-level error log).
sub wait_nginx_ready ($) {
    my ($name) = @_;
    my $deadline = time + $ReadyTimeout;
    my $pid;
    while (time < $deadline) {
        $pid = get_pid_from_pidfile($name);
        last if $pid && is_running($pid);
        sleep 0.005;
    }
    return "no running nginx found through $PidFile" unless $pid && is_running($pid);

    return undef unless -r '/proc/net/tcp';
    my $port_hex = sprintf '%04X', $ServerPort;
    while (time < $deadline) {
        for my $file ('/proc/net/tcp', '/proc/net/tcp6') {
            open my $fh, '<', $file or next;
            while (my $line = <$fh>) {
                # sl local_address rem_address st ...; st 0A = LISTEN
                return undef if $line =~ /^\s*\d+:\s+[0-9A-F]+:$port_hex\s+[0-9A-F]+:[0-9A-F]+\s+0A\s/i;
            }
            close $fh;
        }
        return "nginx $pid exited while starting" unless is_running($pid);
        sleep 0.005;
    }
    return "nothing listens on port $ServerPort ${ReadyTimeout}s after nginx started";
}

# Lines nginx printed on stderr while starting; empty lines dropped.
sub _stderr_lines {
    my $text = shift;
    return map { "$_\n" } grep { /\S/ } split /\n/, $text;
}

# ---------------------------------------------------------------------------
# Log files
# ---------------------------------------------------------------------------

# New error-log lines since the previous call (or the whole log with
# check_accum_error_log).  What nginx printed on stderr at start-up counts as
# the beginning of the log.
sub error_log_data () {
    # let log-phase handlers run after the response went out
    sleep $TestNginxSleep * 3;
    my @lines;
    push @lines, @StartupLines if !$ErrLogFilePos || $CheckAccumErrLog;
    if (open my $in, '<', $ErrLogFile) {
        seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos > 0;
        push @lines, <$in>;
        $ErrLogFilePos = tell($in) unless $CheckAccumErrLog;
        close $in;
    }
    return \@lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    close $in;
    return \@lines;
}

sub check_prev_block_shutdown_error_log () {
    my $block = $PrevBlock;
    return unless defined $block;
    undef $PrevBlock;
    return unless defined $block->shutdown_error_log
        || defined $block->no_shutdown_error_log;
    my $dry_run = $ENV{TEST_NGINX_NO_CLEAN} ? 'TEST_NGINX_NO_CLEAN' : 0;
    $CheckShutdownErrorLog->($block, $dry_run);
}

# ---------------------------------------------------------------------------
# Embedded TCP / UDP mock servers (--- tcp_listen / --- udp_listen)
# ---------------------------------------------------------------------------

# Child-side helpers: no END blocks, no Test::Builder output.
sub _child_exit { POSIX::_exit($_[0] // 0) }

sub _write_file {
    my ($file, $data) = @_;
    open my $out, '>', $file or return;
    binmode $out;
    print $out $data;
    close $out;
}

# Resolve a --- tcp_reply / --- udp_reply value into a list of chunks.
sub _reply_chunks {
    my ($reply, $query, $name, $what) = @_;
    if (ref $reply && ref $reply eq 'CODE') {
        $reply = $reply->($query);
    }
    return () unless defined $reply;
    if (ref $reply) {
        return @$reply if ref $reply eq 'ARRAY';
        warn "$name - bad --- $what value\n";
        return ();
    }
    return ($reply);
}

sub start_tcp_server ($) {
    my ($block) = @_;
    my $name = $block->name;
    my $target = $block->tcp_listen;
    $target =~ s/^\s+|\s+$//g;
    my $reply = $block->tcp_reply;
    if (!defined $reply && !defined $block->tcp_shutdown) {
        bail_out("$name - no --- tcp_reply specified but --- tcp_listen is specified");
    }

    my ($req_len, $query_file);
    if (defined $block->tcp_query || defined $block->tcp_query_len) {
        $req_len = $block->tcp_query_len;
        $req_len = length($block->tcp_query) unless defined $req_len;
        (undef, $query_file) = File::Temp::tempfile('tcp-query-XXXXXX',
                                                    TMPDIR => 1, OPEN => 0);
    }

    my ($sock, $err);
    for my $try (1 .. 30) {
        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                          LocalPort => $target, Proto => 'tcp',
                                          ReuseAddr => 1, Listen => 5);
        } elsif ($target =~ m{\S+\.sock$}) {
            unlink $target if -e $target;
            $sock = IO::Socket::UNIX->new(Local => $target, Type => SOCK_STREAM,
                                          Listen => 5);
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $sock;
        $err = $!;
        last unless $err =~ /address already in use/i;
        sleep 0.1;
    }
    bail_out("$name - failed to create the tcp listening socket on $target: $err")
        unless $sock;

    my $pid = fork();
    bail_out("$name - fork() failed: $!") unless defined $pid;
    if ($pid) {
        $TcpServerPid = $pid;
        return ($sock, $query_file);
    }

    # --- child: serve exactly one connection ---
    $InSubprocess = 1;
    my $parent = getppid();
    my $sel = IO::Select->new($sock);
    my $client;
    my $deadline = time + 60;
    while (!$client) {
        _child_exit(0) if time > $deadline || getppid() != $parent;
        next unless $sel->can_read(0.2);
        $client = $sock->accept;
    }
    my ($no_read, $no_write);
    if (defined(my $how = $block->tcp_shutdown)) {
        sleep parse_time($block->tcp_shutdown_delay) if $block->tcp_shutdown_delay;
        shutdown $client, $how;
        if ($how == 0 || $how == 2) { $no_read = 1 } else { $no_write = 1 }
    }
    my $buf = '';
    unless ($no_read) {
        my $csel = IO::Select->new($client);
        my $read_deadline = time + 60;
        while (time < $read_deadline && getppid() == $parent) {
            next unless $csel->can_read(0.2);
            my $n = sysread $client, my $chunk, 4096;
            last unless $n;
            $buf .= $chunk;
            _write_file($query_file, $buf) if $query_file;
            last if !$req_len || length($buf) >= $req_len;
        }
    }
    if (my $delay = parse_time($block->tcp_reply_delay)) {
        sleep $delay;
    }
    unless ($no_write) {
        local $SIG{PIPE} = 'IGNORE';
        for my $chunk (_reply_chunks($reply, $buf, $name, 'tcp_reply')) {
            my $off = 0;
            while ($off < length $chunk) {
                my $n = syswrite $client, $chunk, length($chunk) - $off, $off;
                last unless $n;
                $off += $n;
            }
        }
    }
    if (defined $block->tcp_no_close) {
        # keep the connection open until we get killed (bounded anyway)
        my $until = time + 60;
        sleep 0.2 while time < $until && getppid() == $parent;
    }
    close $client;
    close $sock;
    _child_exit(0);
}

sub start_udp_server ($) {
    my ($block) = @_;
    my $name = $block->name;
    my $reply = $block->udp_reply;
    bail_out("$name - no --- udp_reply specified but --- udp_listen is specified")
        unless defined $reply;
    my $query_file;
    if (defined $block->udp_query) {
        (undef, $query_file) = File::Temp::tempfile('udp-query-XXXXXX',
                                                    TMPDIR => 1, OPEN => 0);
    }
    my $target = $block->udp_listen;
    $target =~ s/^\s+|\s+$//g;
    my ($sock, $uds_file);
    if ($target =~ /^\d+$/) {
        $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $target, Proto => 'udp',
                                      ReuseAddr => 1)
            or bail_out("$name - failed to create the udp listening socket: $!");
    } elsif ($target =~ m{\S+\.sock$}) {
        unlink $target if -e $target;
        $sock = IO::Socket::UNIX->new(Local => $target, Type => SOCK_DGRAM)
            or bail_out("$name - failed to create the unix datagram socket: $!");
        $uds_file = $target;
    } else {
        bail_out("$name - bad udp_listen target: $target");
    }

    my $pid = fork();
    bail_out("$name - fork() failed: $!") unless defined $pid;
    if ($pid) {
        $UdpServerPid = $pid;
        return ($sock, $query_file, $uds_file);
    }

    # --- child: receive one datagram, answer it ---
    $InSubprocess = 1;
    my $parent = getppid();
    my $sel = IO::Select->new($sock);
    my $deadline = time + 60;
    my ($buf, $peer) = ('');
    while (1) {
        _child_exit(0) if time > $deadline || getppid() != $parent;
        next unless $sel->can_read(0.2);
        $peer = recv $sock, $buf, 65536, 0;
        last;
    }
    _write_file($query_file, $buf) if $query_file;
    if (my $delay = parse_time($block->udp_reply_delay)) {
        sleep $delay;
    }
    for my $chunk (_reply_chunks($reply, $buf, $name, 'udp_reply')) {
        if (defined $peer && length $peer) {
            send $sock, $chunk, 0, $peer;
        }
    }
    _child_exit(0);
}

# Wait (bounded) until the mock server wrote what it received, so that a
# query arriving just after the response (e.g. a syslog datagram sent from
# nginx's log phase) is not missed.
sub _read_query_file {
    my ($file, $bound) = @_;
    my $deadline = time + $bound;
    sleep 0.01 while !-s $file && time < $deadline;
    return _slurp($file);
}

sub run_tcp_server_tests ($$$) {
    my ($block, $sock, $query_file) = @_;
    return unless defined $sock;
    my $name = $block->name;
    my $buf = $query_file ? _read_query_file($query_file, 1) : '';
    if (defined $block->tcp_query) {
        is_str($buf, $block->tcp_query, "$name - tcp_query ok");
    }
    if (defined $block->tcp_query_len) {
        Test::More::is(length($buf), $block->tcp_query_len,
                       "$name - TCP query length ok");
    }
}

sub run_udp_server_tests ($$$) {
    my ($block, $sock, $query_file) = @_;
    return unless defined $sock;
    my $name = $block->name;
    if (defined $block->udp_query) {
        my $buf = $query_file ? _read_query_file($query_file, 1) : '';
        is_str($buf, $block->udp_query, "$name - udp_query ok");
    }
}

# ---------------------------------------------------------------------------
# The block loop
# ---------------------------------------------------------------------------

sub run_tests () {
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort
        unless defined $ENV{TEST_NGINX_SERVER_PORT};

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value('name', "$0 " . $block->name);
        run_test($block);
        $PrevBlock = $block;
    }

    cleanup();

    # Stop the last nginx now (rather than in END) so that its
    # shutdown_error_log checks are ordinary TAP lines.
    unless ($ENV{TEST_NGINX_NO_CLEAN}) {
        stop_nginx('END') if $NginxStartedByUs;
        check_prev_block_shutdown_error_log();
    }
}

# Parse "N: <op> a.b.c[: reason]" version conditions.
sub _version_cond {
    my ($cur, $op, @v) = @_;
    my $ver = get_canon_version(@v);
    return 1 if !defined $cur && $op =~ /^</;
    return 0 unless defined $cur;
    return $op eq '<'  ? $cur <  $ver
         : $op eq '<=' ? $cur <= $ver
         : $op eq '>'  ? $cur >  $ver
         :               $cur >= $ver;
}

# Returns ($should_skip, $tests_to_skip, $reason, $should_todo, $todo_reason).
sub _skip_and_todo {
    my ($block) = @_;
    my $name = $block->name;
    my ($should_skip, $tests_to_skip, $reason);

    if (defined(my $spec = $block->skip_eval)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            ($tests_to_skip, $reason) = ($1, 'skip_eval');
            my $code = $2;
            $should_skip = eval $code;
            bail_out("$name - skip_eval - failed to eval the Perl code \"$code\": $@")
                if $@;
        }
    }
    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        $tests_to_skip = $1;
        $reason = $6 || "nginx version $2 $3.$4.$5";
        $should_skip = 1 if _version_cond($NginxVersion, $2, $3, $4, $5);
    } elsif (defined(my $spec2 = $block->skip_nginx2)) {
        $spec2 =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)\s*(or|and)\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx2 spec: $spec2");
        $tests_to_skip = $1;
        $reason = $11;
        my $cond1 = _version_cond($NginxVersion, $2, $3, $4, $5);
        my $cond2 = _version_cond($NginxVersion, $7, $8, $9, $10);
        $should_skip = 1 if !defined $NginxVersion
            || ($6 eq 'or' ? ($cond1 || $cond2) : ($cond1 && $cond2));
    }
    if (defined(my $spec = $block->skip_openssl)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)([a-z])?(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_openssl spec: $spec");
        $tests_to_skip = $1;
        my ($op, @v) = ($2, $3, $4, $5);
        $reason = $7 || (defined $OpenSSLVersion
                         ? "OpenSSL version $op $3.$4.$5" . ($6 // '')
                         : 'Not built with OpenSSL');
        my $ver = _canon_openssl_version(@v, $6);
        $should_skip = 1 if !defined $OpenSSLVersion
            || ($op eq '<'  ? $OpenSSLVersion <  $ver
              : $op eq '<=' ? $OpenSSLVersion <= $ver
              : $op eq '>'  ? $OpenSSLVersion >  $ver
              :               $OpenSSLVersion >= $ver);
    }

    my ($should_todo, $todo_reason);
    if (defined(my $spec = $block->todo_nginx)) {
        $spec =~ /^\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- todo_nginx spec: $spec");
        $todo_reason = $5;
        $should_todo = 1 if _version_cond($NginxVersion, $1, $2, $3, $4);
    }
    if (defined(my $spec = $block->todo)) {
        $spec =~ /^\s*(\d+)\s*:\s*(.*)/s
            or bail_out("$name - Invalid --- todo spec: $spec");
        ($should_todo, $tests_to_skip, $todo_reason) = (1, $1, $2);
    }
    return ($should_skip, $tests_to_skip, $reason // 'various reasons',
            $should_todo, $todo_reason // 'various reasons');
}

my %Unsupported = map { $_ => 1 } qw(http2 http3 stap curl reload_fails);

sub run_test ($) {
    my ($block) = @_;
    return if defined $block->SKIP;

    my $name = $block->name;
    my $first_time = $FirstTime;
    $FirstTime = 0;

    for my $sec (sort keys %Unsupported) {
        warn "WARNING: $name - section --- $sec is not supported by this "
            . "Test::Nginx implementation and is ignored\n"
            if defined $block->$sec;
    }

    my $rand_ports = {};
    my $config = expand_env_in_text($block->config, $name, $rand_ports);
    local $LogLevel = $block->log_level || $LogLevel;
    my $must_die = $block->must_die;
    my $dry_run = 0;

    # Like Test::Nginx: a block without --- config reuses the running nginx
    # (and its configuration) instead of restarting it.
    my $should_restart = 1;
    if (!defined $config) {
        if (!$NoNginxManager && !defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could "
                     . "not get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?");
        }
        $should_restart = 0;
    } elsif ($NoNginxManager) {
        Test::More::diag("NO_NGINX_MANAGER activated: config for $name ignored");
        $should_restart = 0;
    } elsif (!$ForceRestartOnTest && defined $PrevConfig && $config eq $PrevConfig) {
        $should_restart = 0;
    }

    my ($should_skip, $tests_to_skip, $skip_reason, $should_todo, $todo_reason)
        = _skip_and_todo($block);

    if (!$NoNginxManager && !$should_skip && $should_restart) {
        $PrevConfig = $config;

        stop_nginx($name);
        check_prev_block_shutdown_error_log();

        setup_server_root($first_time);
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);

        my $attempts = defined $must_die ? $RepeatEach : 1;
        for my $i (0 .. $attempts - 1) {
            my ($status, $exit_code, $stderr);
            for my $try (1 .. 3) {
                ($status, $exit_code, $stderr) = run_nginx_command($name);
                # A previous nginx that is still releasing the port is the
                # only failure worth retrying.
                last if defined $must_die || $status == 0
                    || $stderr !~ /Address already in use/;
                sleep 0.5;
            }
            $NginxStartedByUs = 1 if $status == 0;
            @StartupLines = _stderr_lines($stderr);
            $ErrLogFilePos = 0;

            if (defined $must_die) {
                if ($status == -1) {
                    Test::More::fail("$name - failed to execute the nginx command line");
                    Test::More::diag($stderr) if length $stderr;
                } elsif ($status & 128) {
                    Test::More::fail("$name - nginx core dumped");
                } elsif (looks_like_number($must_die)) {
                    Test::More::is($exit_code, $must_die,
                                   "$name - die with the expected exit code");
                } else {
                    Test::More::isnt($status, 0, "$name - die as expected");
                }
                $CheckErrorLog->($block, undef, $dry_run, $i, 0);
                if ($status == 0) {
                    warn "WARNING: $name - nginx must die but it does not; "
                        . "killing it (req $i)\n";
                    wait_nginx_ready($name);
                    stop_nginx($name);
                }
                next;
            }

            if ($status != 0) {
                Test::More::fail("$name - nginx failed to start (command \"$NginxBinary "
                                 . "-p $ServRoot/ -c $ConfFile\", status $status)");
                Test::More::diag("nginx said:\n$stderr") if length $stderr;
                my $tail = _slurp($ErrLogFile);
                Test::More::diag("error.log:\n$tail") if length $tail;
                return;
            }
            if (my $err = wait_nginx_ready($name)) {
                Test::More::fail("$name - nginx did not become ready: $err");
                my $tail = _slurp($ErrLogFile);
                Test::More::diag("error.log:\n$tail") if length $tail;
                return;
            }
        }
        return if defined $must_die;
        sleep $TestNginxSleep;
    }

    if (my $init = $block->init) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = 0;
    for my $i (1 .. $RepeatEach) {
        my ($tcp_sock, $tcp_query_file);
        ($tcp_sock, $tcp_query_file) = start_tcp_server($block)
            if defined $block->tcp_listen && !$should_skip;
        my ($udp_sock, $udp_query_file, $uds_file);
        ($udp_sock, $udp_query_file, $uds_file) = start_udp_server($block)
            if defined $block->udp_listen && !$should_skip;

        write_user_files($block, $rand_ports) if $i > 1;

        if ($should_skip && defined $tests_to_skip) {
            SKIP: {
                Test::More::skip("$name - $skip_reason", $tests_to_skip);
            }
        } elsif ($should_todo) {
            TODO: {
                Test::More::todo_skip("$name - $todo_reason", $tests_to_skip // 1);
            }
        } elsif (!$should_skip) {
            $RunTestHelper->($block, $dry_run, $i - 1);
            run_tcp_server_tests($block, $tcp_sock, $tcp_query_file);
            run_udp_server_tests($block, $udp_sock, $udp_query_file);
        }

        if (defined $udp_sock) {
            kill_child($UdpServerPid, $name) if defined $UdpServerPid;
            undef $UdpServerPid;
            close $udp_sock;
            unlink $uds_file if defined $uds_file;
        }
        if (defined $tcp_sock) {
            kill_child($TcpServerPid, $name) if defined $TcpServerPid;
            undef $TcpServerPid;
            close $tcp_sock;
        }
        unlink grep { defined } $tcp_query_file, $udp_query_file;
    }

    if (my $total = $ENV{TEST_NGINX_ERROR_LOG}) {
        if (-s $ErrLogFile && open my $out, '>>', $total) {
            print $out "\n=== $0 $name\n", _slurp($ErrLogFile);
            close $out;
        }
    }
}

END {
    # Safety net when run_tests() died half-way: no stray nginx / helpers.
    if ($$ == $MainPid && !$InSubprocess) {
        local $?;
        cleanup();
        if ($NginxStartedByUs && !$ENV{TEST_NGINX_NO_CLEAN}) {
            stop_nginx('END');
        }
    }
}

1;
