#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Installs (or with -Uninstall removes) the posture daemon as a Windows service.

.DESCRIPTION
  - posture.exe goes to %ProgramFiles%\posture (the default ACL: Administrators and
    SYSTEM write, users read and run).
  - %ProgramData%\posture (config) and %ProgramData%\posture\state (outbox, device key)
    get an owner-only ACL: inheritance off, full control for SYSTEM and Administrators
    only, owner Administrators.
  - config.toml is copied there when absent (an existing one is kept).
  - The service `posture` runs `posture.exe --config <config> daemon --service` as
    LocalSystem (the checks read BitLocker and Security Center state, which needs an
    administrator; the device key lives in the machine's TPM), starts automatically,
    and is restarted on failure (after 5 s, 5 s, then 60 s; the count resets after a
    day), including when it stops with an error (failure flag).
  Every account is named by its SID, so this works on every display language.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install.ps1 -Binary .\posture.exe
#>
param(
    [string]$Binary = (Join-Path $PSScriptRoot 'posture.exe'),
    [switch]$Uninstall
)
$ErrorActionPreference = 'Stop'
$name = 'posture'
$programFiles = Join-Path $env:ProgramFiles 'posture'
$data = Join-Path $env:ProgramData 'posture'
$state = Join-Path $data 'state'
$config = Join-Path $data 'config.toml'

function Invoke-Sc {
    & sc.exe @args | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "sc.exe $args failed with exit code $LASTEXITCODE" }
}

if ($Uninstall) {
    if (Get-Service -Name $name -ErrorAction SilentlyContinue) {
        Stop-Service -Name $name -ErrorAction SilentlyContinue
        Invoke-Sc delete $name
    }
    Write-Host "Removed the service; $data (config, state, device key) is kept."
    return
}

if (-not (Test-Path $Binary)) { throw "no posture.exe at $Binary (pass -Binary)" }
New-Item -ItemType Directory -Force -Path $programFiles | Out-Null
Copy-Item -Force $Binary (Join-Path $programFiles 'posture.exe')

foreach ($dir in @($data, $state)) {
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
}
# Owner-only: SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544), nothing inherited.
& icacls.exe $data /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' /T /Q | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls failed on $data" }
& icacls.exe $data /setowner '*S-1-5-32-544' /T /Q | Out-Null
if (-not (Test-Path $config)) {
    Copy-Item (Join-Path $PSScriptRoot 'config.toml') $config
}

$exe = Join-Path $programFiles 'posture.exe'
$binPath = "`"$exe`" --config `"$config`" daemon --service"
if (Get-Service -Name $name -ErrorAction SilentlyContinue) {
    Stop-Service -Name $name
    Invoke-Sc config $name "binPath=" $binPath "start=" auto "obj=" LocalSystem
} else {
    New-Service -Name $name -BinaryPathName $binPath -DisplayName 'posture daemon' `
        -Description 'Keeps this device''s security posture fresh and serves signed evidence on \\.\pipe\posture.' `
        -StartupType Automatic | Out-Null
}
# Restart on failure: 5 s, 5 s, then every 60 s; the failure count resets after a day.
Invoke-Sc failure $name "reset=" 86400 "actions=" restart/5000/restart/5000/restart/60000
# Also when the service stops itself with an error exit code, not only when it crashes.
Invoke-Sc failureflag $name 1
Start-Service -Name $name
Get-Service -Name $name
