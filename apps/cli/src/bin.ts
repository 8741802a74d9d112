#!/usr/bin/env node
console.log('gate', process.version)
