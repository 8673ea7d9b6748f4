@echo off
rem Starts a local swimkv cluster on Windows: NODES nodes from BASE_PORT (default 24 on 8080-8103).
rem   init.cmd          start (builds the release binary if needed)
rem   init.cmd stop     stop the swimkv processes started from here (they leave the cluster)
rem   init.cmd clean    remove the nodes' data in run\data
rem Set NODES / BASE_PORT before calling to change the size or the first port.
setlocal enabledelayedexpansion
cd /d "%~dp0"
if "%NODES%"=="" set NODES=24
if "%BASE_PORT%"=="" set BASE_PORT=8080
if not exist run\logs mkdir run\logs
if /i "%1"=="stop" goto stop
if /i "%1"=="clean" goto clean

cargo build --release --quiet --bin swimkv || exit /b 1
set /a LAST=%BASE_PORT%+%NODES%-1
start "swimkv-%BASE_PORT%" /b target\release\swimkv.exe %BASE_PORT% --data-dir run\data\%BASE_PORT% > run\logs\%BASE_PORT%.log 2>&1
timeout /t 1 /nobreak > nul
set /a NEXT=%BASE_PORT%+1
for /l %%p in (%NEXT%,1,%LAST%) do (
  start "swimkv-%%p" /b target\release\swimkv.exe %%p %BASE_PORT% --data-dir run\data\%%p > run\logs\%%p.log 2>&1
)
echo swimkv: %NODES% nodes starting on ports %BASE_PORT%-%LAST%; logs in run\logs
echo   dashboard: http://127.0.0.1:%BASE_PORT%/
echo   members:   curl http://127.0.0.1:%BASE_PORT%/cluster/members
echo   ready:     curl http://127.0.0.1:%BASE_PORT%/ready answers 200 once the cluster serves (a few seconds)
echo   stop:      init.cmd stop
goto :eof

:stop
rem Asks exactly the nodes on our ports to leave gracefully (curl ships with Windows 10+).
set /a LAST=%BASE_PORT%+%NODES%-1
for /l %%p in (%BASE_PORT%,1,%LAST%) do (
  curl -s -X POST http://127.0.0.1:%%p/cluster/leave > nul 2>&1
)
echo stopped
goto :eof

:clean
if exist run\data rmdir /s /q run\data
echo removed run\data
